"""Parsing of fulfillment requests into typed intents, with precise errors for anything malformed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from functions.core.commands import Execution
from functions.core.errors import ProtocolError

SYNC = "action.devices.SYNC"
QUERY = "action.devices.QUERY"
EXECUTE = "action.devices.EXECUTE"
DISCONNECT = "action.devices.DISCONNECT"
INTENTS = (SYNC, QUERY, EXECUTE, DISCONNECT)

# A Firestore batch holds at most 500 writes; Google never sends that many devices in one request.
MAX_DEVICES_PER_REQUEST = 500
MAX_EXECUTIONS_PER_DEVICE = 20
MAX_ID_LENGTH = 1024


@dataclass(frozen=True)
class CommandGroup:
    device_ids: list[str]
    executions: list[Execution]


@dataclass(frozen=True)
class Request:
    request_id: str
    intent: str
    device_ids: list[str] = field(default_factory=list)  # QUERY: the devices asked for, without duplicates
    commands: list[CommandGroup] = field(default_factory=list)  # EXECUTE


def request_id_of(body: Any) -> str | None:
    """The requestId of a body, if it has a usable one, so that even an error can echo it."""
    if isinstance(body, dict):
        request_id = body.get("requestId")
        if isinstance(request_id, str) and 0 < len(request_id) <= MAX_ID_LENGTH:
            return request_id
    return None


def intent_of(body: Any) -> str | None:
    """The intent a (possibly malformed) body names, if it names a known one."""
    if isinstance(body, dict) and isinstance(body.get("inputs"), list) and body["inputs"]:
        first = body["inputs"][0]
        if isinstance(first, dict) and first.get("intent") in INTENTS:
            return str(first["intent"])
    return None


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ProtocolError(message)


def _device_ids(devices: Any, where: str) -> list[str]:
    _expect(isinstance(devices, list) and len(devices) > 0, f"{where}: must be a non-empty array")
    _expect(len(devices) <= MAX_DEVICES_PER_REQUEST, f"{where}: more than {MAX_DEVICES_PER_REQUEST} devices")
    ids: list[str] = []
    for index, device in enumerate(devices):
        _expect(isinstance(device, dict), f"{where}[{index}]: must be an object")
        device_id = device.get("id")
        _expect(
            isinstance(device_id, str) and 0 < len(device_id) <= MAX_ID_LENGTH,
            f"{where}[{index}].id: must be a non-empty string",
        )
        if device_id not in ids:
            ids.append(device_id)
    return ids


def parse_request(body: Any) -> Request:
    """A typed request, or ProtocolError saying exactly what is wrong."""
    _expect(isinstance(body, dict), "the body must be a JSON object")
    request_id = request_id_of(body)
    _expect(request_id is not None, "requestId: must be a non-empty string")
    assert request_id is not None
    inputs = body.get("inputs")
    _expect(isinstance(inputs, list) and len(inputs) == 1, "inputs: must be an array with exactly one input")
    single = inputs[0]
    _expect(isinstance(single, dict), "inputs[0]: must be an object")
    intent = single.get("intent")
    _expect(
        isinstance(intent, str) and intent in INTENTS,
        f"inputs[0].intent: must be one of {', '.join(INTENTS)}",
    )
    payload = single.get("payload")

    if intent in (SYNC, DISCONNECT):
        _expect(payload is None or isinstance(payload, dict), "inputs[0].payload: must be an object")
        return Request(request_id, intent)

    _expect(isinstance(payload, dict), "inputs[0].payload: must be an object")
    if intent == QUERY:
        return Request(request_id, intent, device_ids=_device_ids(payload.get("devices"), "payload.devices"))

    groups = payload.get("commands")
    _expect(isinstance(groups, list) and len(groups) > 0, "payload.commands: must be a non-empty array")
    commands: list[CommandGroup] = []
    all_ids: list[str] = []
    for index, group in enumerate(groups):
        where = f"payload.commands[{index}]"
        _expect(isinstance(group, dict), f"{where}: must be an object")
        ids = _device_ids(group.get("devices"), f"{where}.devices")
        executions_in = group.get("execution")
        _expect(
            isinstance(executions_in, list) and 0 < len(executions_in) <= MAX_EXECUTIONS_PER_DEVICE,
            f"{where}.execution: must be an array of 1 to {MAX_EXECUTIONS_PER_DEVICE} commands",
        )
        executions = []
        for position, execution in enumerate(executions_in):
            at = f"{where}.execution[{position}]"
            _expect(isinstance(execution, dict), f"{at}: must be an object")
            command = execution.get("command")
            _expect(isinstance(command, str) and 0 < len(command) <= 200, f"{at}.command: must be a string")
            params = execution.get("params", {})
            _expect(isinstance(params, dict), f"{at}.params: must be an object")
            # Google puts the follow-up token among the params; it is not a param of the command itself.
            follow_up_token = params.get("followUpToken")
            _expect(
                follow_up_token is None or (isinstance(follow_up_token, str) and 0 < len(follow_up_token) <= 4096),
                f"{at}.params.followUpToken: must be a string",
            )
            params = {key: value for key, value in params.items() if key != "followUpToken"}
            challenge = execution.get("challenge")
            _expect(challenge is None or isinstance(challenge, dict), f"{at}.challenge: must be an object")
            executions.append(Execution(command, params, challenge, follow_up_token))
        commands.append(CommandGroup(ids, executions))
        all_ids.extend(i for i in ids if i not in all_ids)
    _expect(
        len(all_ids) <= MAX_DEVICES_PER_REQUEST,
        f"payload.commands: more than {MAX_DEVICES_PER_REQUEST} devices",
    )
    return Request(request_id, intent, device_ids=all_ids, commands=commands)
