"""The messages of the state topic, parsed and checked: what device clouds publish, and our own report requests.

Device clouds publish a *state message* (JSON in the message data), whose contract is the JSON Schema
functions/core/contracts/state-message.json (documented in the README):

    {"agentUserId": "u1", "deviceId": "lamp-1", "states": {"on": true}, "observedAt": "2026-11-21T10:00:00.123Z"}

optionally with `online`, `notifications` + `eventId`, and `commandId` (+ `errorCode`) completing a command.

The backend itself publishes one more kind on the same topic, marked by the message attribute
`kind=report-all`: after a SYNC, a request for the full report of a user's devices
(`{"agentUserId": "u1", "linkedAt": <epoch ms of the SYNC>}`).

Anything else is an `InvalidMessage`, whose text says what is wrong; it is logged and acknowledged, never retried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from functions.core import json_values
from functions.core.ids import id_problem
from functions.core.schema import errors as schema_errors
from functions.core.times import format_time_ms, parse_time_ms

CONTRACT = Path(__file__).resolve().parent / "contracts" / "state-message.json"
REPORT_ALL_KIND = "report-all"
KIND_ATTRIBUTE = "kind"
# A state message is a few hundred bytes; anything near this is not one.
MAX_MESSAGE_BYTES = 256 * 1024
# A device clock this far ahead would block every later message of the device (older by observedAt).
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000


class InvalidMessage(ValueError):
    """A message that can never be applied; the text says why (it is logged, and the message acknowledged)."""


@dataclass(frozen=True)
class StateMessage:
    agent_user_id: str
    device_id: str
    states: dict[str, Any]
    observed_at_ms: int
    online: bool | None = None
    notifications: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    command_id: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class ReportAllRequest:
    """After a SYNC: report the full state of every device of the user (published by the fulfillment)."""

    agent_user_id: str
    linked_at_ms: int


@cache
def contract() -> dict[str, Any]:
    """The state message's JSON Schema (our own file, read once)."""
    schema: dict[str, Any] = json.loads(CONTRACT.read_text(encoding="utf-8"))
    return schema


def _json(data: bytes) -> Any:
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"the message data is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        return json_values.loads(data)
    except ValueError as problem:
        raise InvalidMessage(f"the message data is not JSON: {problem}") from problem


def named_ids(data: bytes) -> tuple[str | None, str | None]:
    """The agentUserId and deviceId a message names, as far as it can be read (for a refusal's attributes)."""
    try:
        # Lenient on purpose: a message refused for a NaN still names its user and device.
        body = json.loads(data) if len(data) <= MAX_MESSAGE_BYTES else None
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    user, device = body.get("agentUserId"), body.get("deviceId")
    return (user if isinstance(user, str) and user else None, device if isinstance(device, str) and device else None)


def parse(data: bytes, attributes: dict[str, str] | None, now_ms: int) -> StateMessage | ReportAllRequest:
    """The message in `data` (the Pub/Sub message's bytes), or InvalidMessage saying what is wrong."""
    if (attributes or {}).get(KIND_ATTRIBUTE) == REPORT_ALL_KIND:
        return _report_all(_json(data))
    body = _json(data)
    if not isinstance(body, dict):
        raise InvalidMessage("the message must be a JSON object")
    problems = schema_errors(contract(), body, "message")
    if problems:
        raise InvalidMessage("; ".join(problems))
    try:
        observed_at_ms = parse_time_ms(body["observedAt"])
    except ValueError as problem:
        raise InvalidMessage(f"message.observedAt: {problem}") from problem
    if observed_at_ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise InvalidMessage(
            f"message.observedAt: {body['observedAt']} is more than {MAX_FUTURE_SKEW_MS // 60000} minutes in the "
            "future (is the device's clock right?)"
        )
    for name in ("agentUserId", "deviceId"):
        unusable = id_problem(body[name], f"message.{name}")
        if unusable:
            raise InvalidMessage(unusable)
    return StateMessage(
        agent_user_id=body["agentUserId"],
        device_id=body["deviceId"],
        states=dict(body["states"]),
        observed_at_ms=observed_at_ms,
        online=body.get("online"),
        notifications=dict(body.get("notifications") or {}),
        event_id=body.get("eventId"),
        command_id=body.get("commandId"),
        error_code=body.get("errorCode"),
    )


def _report_all(body: Any) -> ReportAllRequest:
    if not isinstance(body, dict) or set(body) != {"agentUserId", "linkedAt"}:
        raise InvalidMessage("a report-all request is {agentUserId, linkedAt}")
    unusable = id_problem(body["agentUserId"], "agentUserId")
    if unusable:
        raise InvalidMessage(unusable)
    linked_at = body["linkedAt"]
    if not isinstance(linked_at, int) or isinstance(linked_at, bool) or linked_at <= 0:
        raise InvalidMessage("linkedAt: must be epoch milliseconds")
    return ReportAllRequest(body["agentUserId"], linked_at)


def report_all_data(agent_user_id: str, linked_at_ms: int) -> tuple[bytes, dict[str, str]]:
    """(data, attributes) of a report-all request."""
    data = json_values.dumps({"agentUserId": agent_user_id, "linkedAt": linked_at_ms})
    return data.encode(), {KIND_ATTRIBUTE: REPORT_ALL_KIND}


def state_message_data(message: StateMessage) -> bytes:
    """The JSON data of a state message (what a device cloud, or a virtual device, publishes)."""
    body: dict[str, Any] = {
        "agentUserId": message.agent_user_id,
        "deviceId": message.device_id,
        "states": message.states,
        "observedAt": format_time_ms(message.observed_at_ms),
    }
    if message.online is not None:
        body["online"] = message.online
    if message.notifications:
        body["notifications"] = message.notifications
        body["eventId"] = message.event_id
    if message.command_id:
        body["commandId"] = message.command_id
    if message.error_code:
        body["errorCode"] = message.error_code
    return json_values.dumps(body).encode()
