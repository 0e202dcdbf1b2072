"""Only JSON values enter and leave: no NaN or Infinity, integers within signed 64 bits, no platform types.

Python's json module reads `1e999` as infinity and would write it back as a bare `Infinity` (not JSON), and
Firestore refuses integers beyond 64 bits or hands back its own types (timestamps, bytes, GeoPoints, references).
Every entrance (fulfillment requests, state messages, device documents, the CLI) checks what it takes with
`problem`, and everything sent is serialised with `dumps` (allow_nan=False).
"""

from __future__ import annotations

import json
import math
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Deeper than anything legitimate; also bounds the walk itself.
MAX_DEPTH = 64


def problem(value: Any, path: str = "") -> str | None:
    """Why `value` is not a plain JSON value (naming the first offending field), or None."""
    return _walk(value, path or "the value", 0)


def _walk(value: Any, path: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"{path}: nested more than {MAX_DEPTH} levels deep"
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return f"{path}: the integer {_short(value)} is outside signed 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a JSON number"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: the key {key!r} is not a string"
            found = _walk(item, f"{path}.{key}", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _walk(item, f"{path}[{index}]", depth + 1)
            if found:
                return found
        return None
    return f"{path}: a {type(value).__name__} is not a JSON value"


def _short(number: int) -> str:
    text = str(number)
    return text if len(text) <= 30 else f"{text[:12]}...({len(text)} digits)"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | str) -> Any:
    """Strict JSON: no NaN or Infinity, no number that overflows to infinity, integers within 64 bits; raises
    ValueError naming the problem (also for bad UTF-8 and absurd nesting)."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError as too_deep:
        raise ValueError("JSON nested too deeply") from too_deep
    found = problem(value, "the body")
    if found:
        raise ValueError(found)
    return value


def dumps(value: Any, *, compact: bool = True) -> str:
    """JSON text of `value`; ValueError (never a bare NaN or Infinity in the output) if it holds a non-finite float."""
    separators = (",", ":") if compact else None
    return json.dumps(value, allow_nan=False, separators=separators)
