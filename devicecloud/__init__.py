"""The client for device clouds: connect a maker's service to the Smart Home backend (docs/device-clouds.md).

    import devicecloud

    devicecloud.publish_state("u1", "lamp-1", {"on": True})            # a state change, on the state topic
    devicecloud.subscribe_commands(handle)                             # the commands of "pubsub" devices
    devicecloud.complete(command.command_id, "u1", "front-door", {"isLocked": True})  # a long-running one is done
    devicecloud.verify_webhook(request.headers, request.get_data(), secret)           # a "webhook" call is ours

Settings come from the arguments or the environment, as for the backend: GOOGLE_CLOUD_PROJECT, STATE_TOPIC
(device-state), COMMANDS_SUBSCRIPTION (device-cloud, your pull subscription of the commands topic), and
PUBSUB_EMULATOR_HOST for the emulator. Depends on google-cloud-pubsub only, loaded on first use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devicecloud import contract

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Smarthome-Timestamp"
SIGNATURE_HEADER = "X-Smarthome-Signature"
REPLAY_WINDOW_S = 300
PUBLISH_TIMEOUT_S = 30.0

__all__ = [
    "Command",
    "DeviceCloud",
    "InvalidStateMessage",
    "WebhookVerificationError",
    "complete",
    "publish_state",
    "sign_webhook",
    "state_message",
    "subscribe_commands",
    "verify_webhook",
]


class InvalidStateMessage(ValueError):
    """The message breaks the state message contract; nothing was published. The text says where."""


class WebhookVerificationError(ValueError):
    """A webhook call that did not come from the backend (or came too late): answer 401 and do nothing."""


@dataclass(frozen=True)
class Command:
    """One command from the commands topic, for a device whose backend is "pubsub"."""

    command_id: str
    agent_user_id: str
    device_id: str
    command: str  # e.g. action.devices.commands.LockUnlock
    params: dict[str, Any] = field(default_factory=dict)
    issued_at: str = ""
    expects_result: bool = False  # long-running: complete it with `complete` (its state changes only then)

    @property
    def name(self) -> str:
        """The command's short name, e.g. LockUnlock."""
        return self.command.rsplit(".", 1)[-1]

    @classmethod
    def from_message(cls, data: bytes) -> Command:
        body = json.loads(data)
        return cls(
            command_id=str(body["commandId"]),
            agent_user_id=str(body["agentUserId"]),
            device_id=str(body["deviceId"]),
            command=str(body["command"]),
            params=dict(body.get("params") or {}),
            issued_at=str(body.get("issuedAt") or ""),
            expects_result=bool(body.get("expectsResult", False)),
        )


def _pubsub() -> Any:
    """google.cloud.pubsub_v1, imported on first use (importing this package costs nothing)."""
    return importlib.import_module("google.cloud.pubsub_v1")


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state_message(
    agent_user_id: str,
    device_id: str,
    states: Mapping[str, Any] | None = None,
    *,
    observed_at: str | dt.datetime | None = None,
    online: bool | None = None,
    notifications: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    command_id: str | None = None,
    error_code: str | None = None,
) -> bytes:
    """A state message's data, checked against the contract (raises InvalidStateMessage). `observed_at`: when the
    device observed it (default now); give each observation of a device its own millisecond."""
    if isinstance(observed_at, dt.datetime):
        if observed_at.tzinfo is None:
            raise InvalidStateMessage("observed_at: a datetime with a time zone")
        observed_at = observed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message: dict[str, Any] = {
        "agentUserId": agent_user_id,
        "deviceId": device_id,
        "states": dict(states or {}),
        "observedAt": observed_at or _now_text(),
    }
    optional = {
        "online": online,
        "notifications": dict(notifications) if notifications is not None else None,
        "eventId": event_id,
        "commandId": command_id,
        "errorCode": error_code,
    }
    message.update({key: value for key, value in optional.items() if value is not None})
    found = contract.problems(message)
    if found:
        raise InvalidStateMessage("; ".join(found))
    try:
        return json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as problem:
        raise InvalidStateMessage(f"not JSON: {problem}") from problem


class DeviceCloud:
    """The backend's topics, for one project: publish state messages, take commands. Clients load on first use."""

    def __init__(
        self,
        project: str | None = None,
        *,
        state_topic: str | None = None,
        commands_subscription: str | None = None,
    ) -> None:
        self.project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT") or ""
        self.state_topic = state_topic or os.environ.get("STATE_TOPIC") or "device-state"
        self.commands_subscription = commands_subscription or os.environ.get("COMMANDS_SUBSCRIPTION") or "device-cloud"
        self._publisher: Any = None
        self._subscriber: Any = None
        self._lock = threading.Lock()

    def _path(self, kind: str, name: str) -> str:
        if "/" in name:
            return name  # already a full path: projects/P/topics/T
        if not self.project:
            raise ValueError("no project: pass project= or set GOOGLE_CLOUD_PROJECT")
        return f"projects/{self.project}/{kind}/{name}"

    def publisher(self) -> Any:
        with self._lock:
            if self._publisher is None:
                self._publisher = _pubsub().PublisherClient()
            return self._publisher

    def subscriber(self) -> Any:
        with self._lock:
            if self._subscriber is None:
                self._subscriber = _pubsub().SubscriberClient()
            return self._subscriber

    def publish_state(
        self, agent_user_id: str, device_id: str, states: Mapping[str, Any] | None = None, **more: Any
    ) -> str:
        """Publishes one state message (see `state_message` for the fields); returns its Pub/Sub message id."""
        data = state_message(agent_user_id, device_id, states, **more)
        future = self.publisher().publish(self._path("topics", self.state_topic), data)
        return str(future.result(timeout=PUBLISH_TIMEOUT_S))

    def complete(
        self,
        command_id: str,
        agent_user_id: str,
        device_id: str,
        states: Mapping[str, Any] | None = None,
        *,
        error_code: str | None = None,
        **more: Any,
    ) -> str:
        """The result of a long-running command: the state the device reached (and `error_code` if it failed,
        e.g. deviceJammingDetected, with what the device reports, e.g. {"isJammed": True})."""
        return self.publish_state(
            agent_user_id, device_id, states, command_id=command_id, error_code=error_code, **more
        )

    def subscribe_commands(
        self,
        handler: Callable[[Command], None],
        *,
        subscription: str | None = None,
        max_outstanding: int = 16,
    ) -> Any:
        """Takes the commands of the pull subscription (default COMMANDS_SUBSCRIPTION), at most `max_outstanding`
        at a time (flow control), each acknowledged once `handler` returned; one the handler raises on comes back
        (nack). Returns the streaming pull future: `.result()` to serve, `.cancel()` to stop."""
        path = self._path("subscriptions", subscription or self.commands_subscription)

        def received(message: Any) -> None:
            try:
                command = Command.from_message(message.data)
            except (ValueError, KeyError, TypeError) as problem:
                log.error("not a command: acknowledged and dropped (%s)", problem)
                message.ack()
                return
            try:
                handler(command)
            except Exception:
                log.exception("the handler failed on command %s: it comes again", command.command_id)
                message.nack()
                return
            message.ack()

        flow = _pubsub().types.FlowControl(max_messages=max_outstanding)
        return self.subscriber().subscribe(path, received, flow_control=flow)


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Smarthome-Signature value the backend sends: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    now: float | None = None,
    tolerance_s: int = REPLAY_WINDOW_S,
) -> None:
    """Checks that a webhook call comes from the backend: its signature over the exact body received, made with the
    shared secret, within `tolerance_s` (5 minutes) of now, so that a recorded call cannot be replayed later.
    Raises WebhookVerificationError (answer 401 and do nothing); returns None when the call is genuine."""
    if not secret:
        raise WebhookVerificationError("no secret to check the call with")
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit():
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} is missing or not unix seconds")
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        raise WebhookVerificationError(f"the call is more than {tolerance_s} s from now: a replay, or a clock off")
    if not hmac.compare_digest(given.encode(), sign_webhook(secret, timestamp, body).encode()):
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} does not match the body")


_default: DeviceCloud | None = None
_default_lock = threading.Lock()


def _cloud() -> DeviceCloud:
    global _default
    with _default_lock:
        if _default is None:
            _default = DeviceCloud()
        return _default


def publish_state(agent_user_id: str, device_id: str, states: Mapping[str, Any] | None = None, **more: Any) -> str:
    """`DeviceCloud().publish_state(...)` with the settings of the environment."""
    return _cloud().publish_state(agent_user_id, device_id, states, **more)


def complete(
    command_id: str, agent_user_id: str, device_id: str, states: Mapping[str, Any] | None = None, **more: Any
) -> str:
    """`DeviceCloud().complete(...)` with the settings of the environment."""
    return _cloud().complete(command_id, agent_user_id, device_id, states, **more)


def subscribe_commands(handler: Callable[[Command], None], **options: Any) -> Any:
    """`DeviceCloud().subscribe_commands(...)` with the settings of the environment."""
    return _cloud().subscribe_commands(handler, **options)
