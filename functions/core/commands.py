"""Commands that complete asynchronously, and the device backends that complete them.

When an EXECUTE carries Google's `followUpToken` for a command that a device completes later (LockUnlock,
OpenClose, NetworkControl's TestNetworkSpeed), the fulfillment answers PENDING and `DeviceBackends.pending`
(the fulfillment's FollowUps port) stores a `PendingCommand` under a fresh `commandId`, then hands the command to
the device's backend:

  * "virtual" (the default): the device lives in Firestore. It completes the command itself by publishing, on
    the state topic, the state message a device cloud would have sent (with the commandId), optionally after
    VIRTUAL_DEVICE_DELAY_MS (the Report State function waits until then) so that follow-ups can be exercised.
  * "pubsub": the command goes to the commands topic (COMMANDS_TOPIC) as `{"commandId", "agentUserId",
    "deviceId", "command", "params", "issuedAt"}`; the maker's device cloud carries it out and publishes a state
    message with the same commandId (and `errorCode` if it failed).

The backend is the device document's field `backend` ("virtual" or "pubsub"; absent means virtual), written by
the operator (CLI `devices add`/`update`), never sent to Google.

The state message with the commandId makes the Report State function send Google the follow-up response, with
the new state, once; a token is good for 5 minutes (Google's follow-up window): later, nothing is sent (logged).
The token is Google's, not a secret of ours, but it is kept only in the pending command's document (removed by
a Firestore TTL policy on `expiresAt`) and the report queue, and never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from functions.core import json_values
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


VIRTUAL = "virtual"
PUBSUB = "pubsub"
BACKENDS = (VIRTUAL, PUBSUB)
FOLLOW_UP_TTL_MS = 5 * 60 * 1000
# What a virtual router measures in a speed test (Mbps).
VIRTUAL_DOWNLOAD_MBPS = 100.0
VIRTUAL_UPLOAD_MBPS = 20.0
TEST_NETWORK_SPEED = "action.devices.commands.TestNetworkSpeed"


def backend_of(document: Mapping[str, Any] | None) -> str:
    """The device's backend; anything but "pubsub" is the virtual device (an unknown value is logged)."""
    value = (document or {}).get("backend")
    if value in (None, VIRTUAL):
        return VIRTUAL
    if value == PUBSUB:
        return PUBSUB
    log.warning("unknown device backend; using the virtual device", extra={"backend": str(value)[:40]})
    return VIRTUAL


@dataclass(frozen=True)
class PendingCommand:
    command_id: str
    agent_user_id: str
    device_id: str
    command: str
    params: dict[str, Any]
    token: str
    created_ms: int
    expires_ms: int
    backend: str = VIRTUAL
    due_ms: int = 0  # a virtual device completes no earlier than this
    completed_by: str | None = None  # the report queue entry that carries the follow-up

    def to_dict(self) -> dict[str, Any]:
        return {
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

    @classmethod
    def from_dict(cls, command_id: str, agent_user_id: str, data: Mapping[str, Any]) -> PendingCommand:
        return cls(
            command_id=command_id,
            agent_user_id=agent_user_id,
            device_id=str(data["deviceId"]),
            command=str(data["command"]),
            params=dict(data.get("params") or {}),
            token=str(data["followUpToken"]),
            created_ms=int(data.get("createdAt") or 0),
            expires_ms=int(data.get("expiresAtMs") or 0),
            backend=str(data.get("backend") or VIRTUAL),
            due_ms=int(data.get("dueAt") or 0),
            completed_by=data.get("completedBy"),
        )

    def command_message(self) -> bytes:
        """What the commands topic gets for a "pubsub" device (no token: that stays with us)."""
        body = {
            "commandId": self.command_id,
            "agentUserId": self.agent_user_id,
            "deviceId": self.device_id,
            "command": self.command,
            "params": self.params,
            "issuedAt": format_time_ms(self.created_ms),
        }
        return json_values.dumps(body).encode()


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
