"""Small helpers shared by the HTTP functions: JSON replies and bounded body reading."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Request

JSON_HEADERS = {"Content-Type": "application/json"}
FlaskReply = tuple[str, int, dict[str, str]]


def json_reply(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> FlaskReply:
    return json.dumps(body, separators=(",", ":")), status, {**JSON_HEADERS, **(headers or {})}


def error_reply(status: int, error: str, description: str, **extra: Any) -> FlaskReply:
    return json_reply(status, {"error": error, "error_description": description, **extra})


class BodyTooLarge(Exception):
    pass


def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing anything over `limit` bytes without reading more than that."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    data: bytes = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes) -> Any:
    """Strict JSON: no NaN or Infinity; raises ValueError (also for bad UTF-8 and absurd nesting)."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError as too_deep:
        raise ValueError("JSON nested too deeply") from too_deep


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
