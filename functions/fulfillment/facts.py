"""The facts of each fulfillment answer in the logs, for Home Vitals (functions.core.vitals, docs/vitals.md):

  * one "fulfillment answer" line per answer: intent, requestId, userHash (never the agentUserId), latencyMs, the
    HTTP status, and per device its type, traits involved, status and errorCode;
  * one "fulfillment device result" line per device of a QUERY or EXECUTE answer (what infra/monitoring.tf's
    log-based metrics count, as they cannot iterate a list): its type, status, errorCode, whether Google exempts
    the error, the answer's latency, and for QUERY a hash of the states answered (the state accuracy estimate).

The service (functions.fulfillment.service) puts an `AnswerFacts` on its Reply; the HTTP function calls
`log_answer` once the answer is built, or `log_failed_answer` when the service raised instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.core import tokens, vitals
from functions.core import traits as trait_registry
from functions.core.device import Device
from functions.core.ports import Snapshot, Validated
from functions.fulfillment.requests import intent_of, request_id_of

if TYPE_CHECKING:
    from functions.core.commands import Execution

log = logging.getLogger(__name__)

UNKNOWN_TYPE = "unknown"  # a device that is not found (or could not be read): Google still counts its result
# A SYNC of a large home lists every device on its answer line; past this many the line names how many it left out.
MAX_LISTED_DEVICES = 200


@dataclass(frozen=True)
class DeviceFact:
    device_id: str
    device_type: str
    traits: tuple[str, ...]  # short names: the device's (SYNC, QUERY) or the commands' (EXECUTE)
    status: str
    error_code: str | None = None
    states_hash: str | None = None  # QUERY answers with states: vitals.states_hash of them


@dataclass(frozen=True)
class AnswerFacts:
    intent: str  # action.devices.*
    request_id: str
    devices: tuple[DeviceFact, ...] = ()


# Building the facts (the service calls these)


def device_in(snapshot: Snapshot, device_id: str) -> Device | None:
    """The valid device of a snapshot, quietly (the service has logged an invalid one already)."""
    stored = snapshot.devices.get(device_id)
    if isinstance(stored, Validated) and isinstance(stored.device, Device):
        return stored.device
    return None


def _short_traits(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.rsplit(".", 1)[-1] for name in names))


def sync_facts(views: Iterable[Mapping[str, Any]]) -> tuple[DeviceFact, ...]:
    """The devices of a SYNC answer (its device objects)."""
    return tuple(
        DeviceFact(str(view.get("id")), str(view.get("type")), _short_traits(view.get("traits") or ()), "SUCCESS")
        for view in views
    )


def query_fact(device_id: str, device: Device | None, answer: Mapping[str, Any]) -> DeviceFact:
    """One device of a QUERY answer (`answer` is its entry in payload.devices)."""
    status = str(answer.get("status") or "SUCCESS")
    return DeviceFact(
        device_id,
        device.type if device is not None else UNKNOWN_TYPE,
        _short_traits(device.trait_names) if device is not None else (),
        status,
        answer.get("errorCode"),
        vitals.states_hash(answer) if status in vitals.SUCCESS_STATUSES else None,
    )


def execute_fact(
    device_id: str, device: Device | None, executions: Sequence[Execution], status: str, error_code: str | None
) -> DeviceFact:
    """One device of an EXECUTE answer: the traits are those of the commands it was sent."""
    commands = (trait_registry.for_command(execution.command) for execution in executions)
    return DeviceFact(
        device_id,
        device.type if device is not None else UNKNOWN_TYPE,
        _short_traits(trait.name for trait in commands if trait is not None),
        status,
        error_code,
    )


# Logging them (the HTTP function calls these)


def _latency_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _user_of(bearer_token: str | None) -> str | None:
    """The hash of the agentUserId the token names (checked or not: the hash is all that is logged)."""
    named = tokens.parse(bearer_token or "")
    return vitals.user_hash(named[1]) if named is not None else None


def log_answer(
    facts: AnswerFacts | None, body: Any, bearer_token: str | None, http_status: int, started: float
) -> None:
    """The answer's lines; `started` is time.monotonic() when the request arrived. Without facts (a malformed
    request, a refused token, DISCONNECT) the answer line alone, with what the body tells."""
    user = _user_of(bearer_token)
    if facts is None:
        _log(vitals.short_intent(intent_of(body)), request_id_of(body), user, (), http_status, _latency_ms(started))
        return
    _log(vitals.short_intent(facts.intent), facts.request_id, user, facts.devices, http_status, _latency_ms(started))


def log_failed_answer(body: Any, bearer_token: str | None, http_status: int, started: float) -> None:
    """The lines of an answer the service could not give (storage down, a bug): every device the request names
    failed, of a type unknown here (the devices could not be read)."""
    user = _user_of(bearer_token)
    devices = tuple(DeviceFact(device_id, UNKNOWN_TYPE, (), "ERROR") for device_id in _device_ids_of(body))
    _log(vitals.short_intent(intent_of(body)), request_id_of(body), user, devices, http_status, _latency_ms(started))


def _device_ids_of(body: Any) -> list[str]:
    """The device ids a (possibly malformed) QUERY or EXECUTE body names."""
    inputs = body.get("inputs") if isinstance(body, dict) else None
    first = inputs[0] if isinstance(inputs, list) and inputs else None
    payload = first.get("payload") if isinstance(first, dict) else None
    if not isinstance(payload, dict):
        return []
    commands = payload.get("commands")
    groups: list[Any] = commands if isinstance(commands, list) else [payload]
    found: dict[str, None] = {}
    for group in groups:
        listed = group.get("devices") if isinstance(group, dict) else None
        for device in listed if isinstance(listed, list) else []:
            if isinstance(device, dict) and isinstance(device.get("id"), str):
                found[device["id"]] = None
    return list(found)


def _log(
    intent: str,
    request_id: str | None,
    user: str | None,
    devices: Sequence[DeviceFact],
    http_status: int,
    latency_ms: int,
) -> None:
    at_ms = _now_ms()
    listed = [
        {
            "id": d.device_id,
            "type": d.device_type,
            "traits": list(d.traits),
            "status": d.status,
            "errorCode": d.error_code,
        }
        for d in devices[:MAX_LISTED_DEVICES]
    ]
    answer: dict[str, Any] = {
        "intent": intent,
        "requestId": request_id,
        "userHash": user,
        "latencyMs": latency_ms,
        "httpStatus": http_status,
        "devices": listed,
        "atMs": at_ms,
    }
    if len(devices) > MAX_LISTED_DEVICES:
        answer["devicesLeftOut"] = len(devices) - MAX_LISTED_DEVICES
    log.info(vitals.ANSWER_LINE, extra=answer)
    if intent not in vitals.GRADED_INTENTS:
        return
    for device in devices:
        exempt = vitals.is_exempt(device.status, device.error_code)
        result: dict[str, Any] = {
            "intent": intent,
            "requestId": request_id,
            "userHash": user,
            "deviceId": device.device_id,
            "deviceType": device.device_type,
            "status": device.status,
            "errorCode": device.error_code,
            "exempt": exempt,
            "latencyMs": latency_ms,
            "atMs": at_ms,
        }
        if device.states_hash is not None:
            result["statesHash"] = device.states_hash
        severity = logging.INFO if vitals.succeeded(device.status, exempt) else logging.WARNING
        log.log(severity, vitals.DEVICE_RESULT_LINE, extra=result)
