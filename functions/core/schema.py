"""Validation of JSON values against the project's own JSON Schemas (draft 7).

Each trait module writes the schemas of its attributes, states and command params as plain dicts, expressing
Google's documented constraints. They are compiled to Python by fastjsonschema on first use (about ten times
faster than an interpreting validator, which matters on SYNC of a thousand devices); a schema reports its first
problem, naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

JsonSchema = Mapping[str, Any]

# Schemas are module-level constants, so their identity is a stable cache key; the schema is kept with its
# compiled validator so that the id cannot be reused by another object.
_validators: dict[int, tuple[JsonSchema, Callable[[Any], Any]]] = {}


def _validator(schema: JsonSchema) -> Callable[[Any], Any]:
    cached = _validators.get(id(schema))
    if cached is None:
        import fastjsonschema

        cached = (schema, fastjsonschema.compile(_plain(schema)))
        _validators[id(schema)] = cached
    return cached[1]


def _plain(value: Any) -> Any:
    """The schema as plain dicts and lists (fastjsonschema wants JSON-like input)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def errors(schema: JsonSchema, value: Any, where: str = "") -> list[str]:
    """How `value` breaks `schema`, as `where.path: reason`; empty when it is valid."""
    from fastjsonschema import JsonSchemaValueException

    try:
        _validator(schema)(value)
    except JsonSchemaValueException as problem:
        path = ".".join(str(part) for part in (problem.path or [])[1:])
        message = problem.message.removeprefix(str(problem.name or "data")).strip() or problem.message
        # A rule written as {"not": {..., "description": "..."}} explains itself better than the generic text.
        definition = problem.definition if isinstance(problem.definition, Mapping) else {}
        rule = definition.get("not") if problem.rule == "not" else None
        if isinstance(rule, Mapping) and "description" in rule:
            message = str(rule["description"])
        location = ".".join(part for part in (where, path) if part)
        return [f"{location}: {message}" if location else message]
    return []


def is_valid(schema: JsonSchema, value: Any) -> bool:
    return not errors(schema, value)


# Small builders keep the per-trait schemas short and readable.


def obj(
    properties: Mapping[str, JsonSchema] | None = None,
    required: tuple[str, ...] = (),
    additional: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties or {})}
    if required:
        schema["required"] = list(required)
    if not additional:
        schema["additionalProperties"] = False
    schema.update(extra)
    return schema


def array(items: JsonSchema, min_items: int = 0, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": dict(items)}
    if min_items:
        schema["minItems"] = min_items
    schema.update(extra)
    return schema


def number(minimum: float | None = None, maximum: float | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def integer(minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def exclusive(first: str, second: str) -> dict[str, Any]:
    """A rule for `obj(..., **rule)`: the two boolean switches may not both be true."""
    return {
        "not": {
            "properties": {first: {"const": True}, second: {"const": True}},
            "required": [first, second],
            "description": f"{first} and {second} cannot both be true",
        }
    }


BOOLEAN: JsonSchema = {"type": "boolean"}
STRING: JsonSchema = {"type": "string"}
NON_EMPTY_STRING: JsonSchema = {"type": "string", "minLength": 1}
