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


def command_request(
    device_ids: Sequence[str],
    command: str,
    params: Mapping[str, Any] | None = None,
    *,
    ack: bool = False,
    pin: str | None = None,
    follow_up_token: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """EXECUTE of one command on devices, as the `google execute` command and the Google Home page send it: the
    answer to a two-factor challenge (`ack` or `pin`) beside it, Google's followUpToken among its params."""
    with_token = {**dict(params or {}), **({"followUpToken": follow_up_token} if follow_up_token else {})}
    extra: dict[str, Any] = {}
    if pin is not None:
        extra["challenge"] = {"pin": pin}
    elif ack:
        extra["challenge"] = {"ack": True}
    return execute_request([(list(device_ids), [execution(command, with_token, **extra)])], request_id)
