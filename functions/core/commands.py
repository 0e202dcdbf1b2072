"""Commands that complete asynchronously, and the device backends that carry commands out.

The device document's field `backend` says who carries out a device's commands (absent means "virtual"):

  * "virtual" (the default): the device lives in Firestore; EXECUTE writes its new state. A command that answers
    PENDING (one that came with Google's `followUpToken`: LockUnlock, OpenClose, TestNetworkSpeed) is completed by
    the device itself, which publishes on the state topic the state message a device cloud would have sent (with
    the commandId), optionally after VIRTUAL_DEVICE_DELAY_MS (the Report State function waits until then).
  * "pubsub": every command goes to the commands topic (COMMANDS_TOPIC) as `{"commandId", "agentUserId",
    "deviceId", "command", "params", "issuedAt", "expectsResult"}` (never Google's token). A quick command answers
    SUCCESS with the states it sets (stored at once, `expectsResult: false`); a long-running one (the trait says
    which: `Trait.is_long_running`) answers PENDING, stores nothing, and is completed by the maker's state message
    with the same commandId (and `errorCode` if it failed) (`expectsResult: true`).
  * "webhook": the commands go synchronously to the maker's HTTPS endpoint (WEBHOOK_URL, signed with
    WEBHOOK_SECRET; functions/fulfillment/webhook.py), which answers each SUCCESS, PENDING, OFFLINE or ERROR.

The backend is written by the operator (CLI `devices add`), never sent to Google. A pending command is kept as a
`PendingCommand` under its commandId until its result arrives; the state message with the commandId makes the
Report State function send Google the follow-up response (when Google gave a token), with the new state, once. A
token is good for 5 minutes (Google's follow-up window): later, nothing is sent (logged). A command nobody
completes is given up `PENDING_TIMEOUT_S` after it was issued (functions/reporting/timeouts.py), and no later than
FOLLOW_UP_SAFETY_MS before its token expires, so that Google still gets the FAILURE follow-up. The token is Google's,
not a secret of ours, but it is kept only in the pending command's document (removed by a Firestore TTL policy on
`expiresAt`) and the report queue, and never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from functions.core import json_values
from functions.core.device import BACKENDS, Device
from functions.core.times import format_time_ms
from functions.core.traits.base import Effect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Execution:
    """One command of an EXECUTE for one device, as Google sent it."""

    command: str
    params: dict[str, Any]
    challenge: dict[str, Any] | None = None
    follow_up_token: str | None = None


VIRTUAL, PUBSUB, WEBHOOK = BACKENDS  # the device document's `backend` values (functions/core/device.py)
# Backends whose own cloud carries out every command: EXECUTE hands each command over before answering.
REMOTE_BACKENDS = frozenset({PUBSUB, WEBHOOK})
FOLLOW_UP_TTL_MS = 5 * 60 * 1000
# Pending commands are given up by a sweep that runs once a minute (infra/scheduler.tf): one holding a token is
# given up this long before the token expires, so that the FAILURE follow-up still reaches Google.
FOLLOW_UP_SAFETY_MS = 90 * 1000
# What Google hears of a command given up: its device did not answer.
GIVEN_UP_ERROR_CODE = "deviceOffline"
# The state topic's message (attribute kind) that makes the Report State function give up overdue commands.
PENDING_TIMEOUTS_KIND = "pending-timeouts"
# What completed a pending command that no result message completes (`PendingCommand.completed_by`).
GIVEN_UP = "given-up"  # nobody completed it in time, and Google holds no good token for a FAILURE follow-up
NOT_HANDED_OVER = "not-handed-over"  # it could not be published or sent: the EXECUTE answered an error
ANSWERED_AT_ONCE = "answered-at-once"  # the webhook answered it in its call, not PENDING
# A pending command's field the timeout sweep queries (indexed: infra/firestore.tf).
GIVE_UP_AT = "giveUpAt"
# What a virtual router measures in a speed test (Mbps).
VIRTUAL_DOWNLOAD_MBPS = 100.0
VIRTUAL_UPLOAD_MBPS = 20.0
TEST_NETWORK_SPEED = "action.devices.commands.TestNetworkSpeed"


def backend_of(document: Mapping[str, Any] | None) -> str:
    """The device's backend (of its document, or of a Device's settings); anything unknown is the virtual device
    (logged)."""
    value = (document or {}).get("backend")
    if value in (None, VIRTUAL):
        return VIRTUAL
    if value in BACKENDS:
        return str(value)
    log.warning("unknown device backend; using the virtual device", extra={"backend": str(value)[:40]})
    return VIRTUAL


@dataclass(frozen=True)
class PendingCommand:
    command_id: str
    agent_user_id: str
    device_id: str
    command: str
    params: dict[str, Any]
    token: str | None  # Google's followUpToken; None: Google expects no follow-up (the state still changes later)
    created_ms: int
    expires_ms: int
    backend: str = VIRTUAL
    due_ms: int = 0  # a virtual device completes no earlier than this
    completed_by: str | None = None  # what completed it: the report queue entry of its result, or of its giving up
    give_up_ms: int | None = None  # given up then if nobody completed it (None: never, as before timeouts)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "deviceId": self.device_id,
            "command": self.command,
            "params": self.params,
            "followUpToken": self.token,
            "createdAt": self.created_ms,
            "expiresAtMs": self.expires_ms,
            "backend": self.backend,
            "dueAt": self.due_ms,
            "completedBy": self.completed_by,
        }
        if self.give_up_ms is not None and self.completed_by is None:
            # Only while pending: the sweep of overdue commands queries this field (functions/reporting/store.py).
            data[GIVE_UP_AT] = self.give_up_ms
        return data

    @classmethod
    def from_dict(cls, command_id: str, agent_user_id: str, data: Mapping[str, Any]) -> PendingCommand:
        return cls(
            command_id=command_id,
            agent_user_id=agent_user_id,
            device_id=str(data["deviceId"]),
            command=str(data["command"]),
            params=dict(data.get("params") or {}),
            token=str(data["followUpToken"]) if data.get("followUpToken") is not None else None,
            created_ms=int(data.get("createdAt") or 0),
            expires_ms=int(data.get("expiresAtMs") or 0),
            backend=str(data.get("backend") or VIRTUAL),
            due_ms=int(data.get("dueAt") or 0),
            completed_by=data.get("completedBy"),
            give_up_ms=int(data[GIVE_UP_AT]) if data.get(GIVE_UP_AT) is not None else None,
        )


def give_up_at(created_ms: int, token: str | None, expires_ms: int, timeout_ms: int) -> int:
    """When a pending command nobody completed is given up: `timeout_ms` after it was issued, and for a command
    Google gave a token, no later than FOLLOW_UP_SAFETY_MS before that token expires (the FAILURE must reach Google
    while the token is good)."""
    deadline = created_ms + timeout_ms
    if token:
        deadline = min(deadline, expires_ms - FOLLOW_UP_SAFETY_MS)
    return max(deadline, created_ms)


def command_message(
    command_id: str,
    agent_user_id: str,
    device_id: str,
    command: str,
    params: Mapping[str, Any],
    issued_ms: int,
    expects_result: bool,
) -> bytes:
    """One command on the commands topic; `expectsResult`: the device cloud completes it with a state message
    carrying its commandId (a long-running command), or need not (a quick one, answered SUCCESS at once)."""
    body = {
        "commandId": command_id,
        "agentUserId": agent_user_id,
        "deviceId": device_id,
        "command": command,
        "params": dict(params),
        "issuedAt": format_time_ms(issued_ms),
        "expectsResult": expects_result,
    }
    return json_values.dumps(body).encode()


@dataclass(frozen=True)
class CommandRun:
    """One command of an EXECUTE for one device, as the device's traits worked it out."""

    execution: Execution
    effect: Effect
    long_running: bool  # completes later: PENDING, and nothing is stored until the device reports


@dataclass(frozen=True)
class RemoteOutcome:
    """How a device whose own cloud carries out its commands (pubsub, webhook) took one EXECUTE's commands."""

    status: str  # SUCCESS | PENDING | OFFLINE | ERROR
    error_code: str | None = None
    # The state changes to store, in order (each as `Device.with_state` takes it): applied to the device as it is
    # when the EXECUTE writes, so that a write retried after a conflict keeps the other writer's changes.
    changes: tuple[Mapping[str, Any], ...] = ()

    def after(self, device: Device) -> Device:
        for change in self.changes:
            device = device.with_state(change)
        return device


# One EXECUTE's devices whose own cloud carries out their commands, and what each of them answered (by device id).
RemoteDevices = Sequence[tuple[Device, Sequence[CommandRun]]]
Answers = dict[str, RemoteOutcome]


def virtual_result(command: str, params: Mapping[str, Any], effect: Effect, completed_ms: int) -> dict[str, Any]:
    """The states a virtual device reports once it completed `command` (its result message's `states`)."""
    if command == TEST_NETWORK_SPEED:
        seconds = completed_ms // 1000
        states: dict[str, Any] = {"networkSpeedTestInProgress": False}
        if params.get("testDownloadSpeed"):
            states["lastNetworkDownloadSpeedTest"] = {
                "downloadSpeedMbps": VIRTUAL_DOWNLOAD_MBPS,
                "unixTimestampSec": seconds,
                "status": "SUCCESS",
            }
        if params.get("testUploadSpeed"):
            states["lastNetworkUploadSpeedTest"] = {
                "uploadSpeedMbps": VIRTUAL_UPLOAD_MBPS,
                "unixTimestampSec": seconds,
                "status": "SUCCESS",
            }
        return states
    # Locks and openers move to where the command said: the virtual device reports the state it reached, as a
    # device cloud would (the EXECUTE stored nothing for the pending command).
    return dict(effect.state)


class PublishingUnavailable(RuntimeError):
    """There is no Pub/Sub to publish to here (a test environment without the emulator): nothing was published."""


class Publisher(Protocol):
    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        """Publishes one message and returns its id once Pub/Sub has it; raises if it could not."""
        ...
