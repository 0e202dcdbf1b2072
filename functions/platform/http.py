"""Small helpers shared by the HTTP functions: the one reply type, JSON replies and bounded body reading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Request

from functions.core import json_values

JSON_HEADERS = {"Content-Type": "application/json"}
# What every JSON-answering HTTP function returns to functions-framework (Flask): body, status, headers.
Reply = tuple[str, int, dict[str, str]]


def json_reply(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Reply:
    return json_values.dumps(body), status, {**JSON_HEADERS, **(headers or {})}


def error_reply(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> Reply:
    """RFC 6749's error shape, which the fulfillment's plain HTTP errors share."""
    return json_reply(status, {"error": error, "error_description": description, **extra}, headers)


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


def parse_json(data: bytes) -> Any:
    """Strict JSON (functions.core.json_values.loads); raises ValueError saying what is wrong."""
    return json_values.loads(data)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
