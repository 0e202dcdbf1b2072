"""The state message contract (state-message.json, the fulfillment's own JSON Schema), checked without a schema
library: the client depends on google-cloud-pubsub only.

The checker knows the JSON Schema (draft 7) keywords the contract uses; a contract that starts using another one
fails on load, naming it, instead of being checked less (tests/unit/test_devicecloud_client.py compares the
checker with jsonschema on the contract's examples and on messages that break each rule).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

CONTRACT_FILE = "state-message.json"
# Keywords that say nothing to check.
ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples", "default", "format"})
# Keywords this checker checks ("format" is an annotation in draft 7; the contract's patterns carry the formats).
CHECKED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "dependencies",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "enum",
    }
)
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


@cache
def contract() -> dict[str, Any]:
    """The contract, as packaged with the client (in the repository: the fulfillment's file, by its link)."""
    schema: dict[str, Any] = json.loads(resources.files(__package__).joinpath(CONTRACT_FILE).read_text())
    _check_keywords(schema, "")
    return schema


def problems(message: Any) -> list[str]:
    """Every way `message` breaks the contract, each naming where (empty: it keeps it)."""
    found: list[str] = []
    _validate(contract(), message, "", found)
    return found


def _check_keywords(schema: Mapping[str, Any], where: str) -> None:
    unknown = set(schema) - CHECKED - ANNOTATIONS
    if unknown:
        raise ValueError(
            f"the contract uses {', '.join(sorted(unknown))} at {where or '/'}: this client cannot check it"
        )
    for name, sub in (schema.get("properties") or {}).items():
        _check_keywords(sub, f"{where}/{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        _check_keywords(extra, f"{where}/*")
    for name, dependency in (schema.get("dependencies") or {}).items():
        if isinstance(dependency, dict):
            _check_keywords(dependency, f"{where}/dependencies/{name}")


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[type_name])


def _validate(schema: Mapping[str, Any], value: Any, where: str, found: list[str]) -> None:
    at = where or "message"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, name) for name in names):
            found.append(f"{at}: must be {' or '.join(names)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: must be one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append(f"{at}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{at}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{at}: does not match {schema['pattern']}")
    if isinstance(value, dict):
        _validate_object(schema, value, where, found)


def _validate_object(schema: Mapping[str, Any], value: dict[str, Any], where: str, found: list[str]) -> None:
    at = where or "message"
    if len(value) < schema.get("minProperties", 0):
        found.append(f"{at}: needs at least {schema['minProperties']} entries")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        found.append(f"{at}: has more than {schema['maxProperties']} entries")
    for name in schema.get("required", ()):
        if name not in value:
            found.append(f"{at}: {name} is required")
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            _validate(properties[name], item, f"{where}/{name}", found)
        elif extra is False:
            found.append(f"{at}: {name} is not a field of the message")
        elif isinstance(extra, dict):
            _validate(extra, item, f"{where}/{name}", found)
    for name, dependency in (schema.get("dependencies") or {}).items():
        if name not in value:
            continue
        if isinstance(dependency, dict):
            _validate(dependency, value, where, found)
        else:
            for needed in dependency:
                if needed not in value:
                    found.append(f"{at}: {name} needs {needed}")
