"""Validation of JSON values against the project's own JSON Schemas (draft 7).

Each trait module writes the schemas of its attributes, states and command params as plain dicts, expressing
Google's documented constraints. jsonschema is imported on first use, so that a cold start that never
validates does not pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonSchema = Mapping[str, Any]


# Schemas are module-level constants, so their identity is a stable cache key; the schema is kept with its
# validator so that the id cannot be reused by another object.
_validators: dict[int, tuple[JsonSchema, Any]] = {}


def _validator(schema: JsonSchema) -> Any:
    cached = _validators.get(id(schema))
    if cached is None:
        from jsonschema import Draft7Validator

        Draft7Validator.check_schema(schema)
        cached = (schema, Draft7Validator(schema))
        _validators[id(schema)] = cached
    return cached[1]


def errors(schema: JsonSchema, value: Any, where: str = "") -> list[str]:
    """Every way `value` breaks `schema`, each as `where.path: reason`; empty when it is valid."""
    found = []
    for error in sorted(_validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path)
        location = ".".join(part for part in (where, path) if part)
        message = error.message
        # A rule written as {"not": {..., "description": "..."}} explains itself better than jsonschema can.
        if error.validator == "not" and isinstance(error.validator_value, Mapping):
            message = error.validator_value.get("description", message)
        found.append(f"{location}: {message}" if location else message)
    return found


def is_valid(schema: JsonSchema, value: Any) -> bool:
    return bool(_validator(schema).is_valid(value))


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
