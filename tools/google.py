"""Requests the way Google Home sends them, for tests, benchmarks and the local `google` command."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SYNC = "action.devices.SYNC"
QUERY = "action.devices.QUERY"
EXECUTE = "action.devices.EXECUTE"
DISCONNECT = "action.devices.DISCONNECT"


def _request(intent: str, payload: Mapping[str, Any] | None = None, request_id: str | None = None) -> dict[str, Any]:
    single: dict[str, Any] = {"intent": intent}
    if payload is not None:
        single["payload"] = dict(payload)
    return {"requestId": request_id or str(uuid.uuid4()), "inputs": [single]}


def sync_request(request_id: str | None = None) -> dict[str, Any]:
    return _request(SYNC, request_id=request_id)


def disconnect_request(request_id: str | None = None) -> dict[str, Any]:
    return _request(DISCONNECT, request_id=request_id)


def query_request(device_ids: Iterable[str], request_id: str | None = None) -> dict[str, Any]:
    return _request(QUERY, {"devices": [{"id": device_id} for device_id in device_ids]}, request_id)


def execution(command: str, params: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    short = command if command.startswith("action.devices.commands.") else f"action.devices.commands.{command}"
    return {"command": short, "params": dict(params or {}), **extra}


def execute_request(
    groups: Sequence[tuple[Sequence[str], Sequence[Mapping[str, Any]]]], request_id: str | None = None
) -> dict[str, Any]:
    """`groups`: (device ids, executions) pairs, each execution built with `execution(...)`."""
    commands = [
        {"devices": [{"id": device_id} for device_id in ids], "execution": [dict(e) for e in executions]}
        for ids, executions in groups
    ]
    return _request(EXECUTE, {"commands": commands}, request_id)
