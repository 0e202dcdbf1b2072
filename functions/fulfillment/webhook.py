"""The "webhook" backend: a maker's HTTPS API carries out the commands of its devices, synchronously.

One EXECUTE makes at most one call: a POST to WEBHOOK_URL of

    {"requestId", "agentUserId", "commands": [{"commandId", "deviceId", "command", "params", "expectsResult"}]}

with the headers `X-Smarthome-Timestamp` (unix seconds) and `X-Smarthome-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>" keyed with WEBHOOK_SECRET>` (the maker checks it with `devicecloud.verify_webhook`, and
refuses calls more than 5 minutes off). The maker answers each command:

    {"results": [{"commandId", "status": "SUCCESS" | "PENDING" | "OFFLINE" | "ERROR", "states"?, "errorCode"?}]}

`states` (with SUCCESS) are the device's states after the command, checked against its traits and stored; a
SUCCESS without states stores what the command sets. PENDING completes later with a state message carrying the
commandId (`expectsResult: true` marks the long-running commands, which should answer so). An answer that does not
hold up is that device's `hardError`, with a log line naming the problem. A call that times out
(WEBHOOK_TIMEOUT_S), fails to connect or gets a 5xx is `transientError` for its devices: it says what we know (the
maker's service did not answer) and invites Google to try again, where `deviceOffline` would tell the user their
device is offline, which only the maker knows (it answers OFFLINE then). Google never gets a 5xx from this.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from functions.core import errors, json_values
from functions.core.commands import CommandRun, RemoteOutcome
from functions.core.device import Device
from functions.platform import config

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Smarthome-Timestamp"
SIGNATURE_HEADER = "X-Smarthome-Signature"
HARD_ERROR = "hardError"
STATUSES = ("SUCCESS", "PENDING", "OFFLINE", "ERROR")
RESULT_FIELDS = frozenset({"commandId", "status", "states", "errorCode"})
MAX_ANSWER_BYTES = 1024 * 1024
_ERROR_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Smarthome-Signature of a call: HMAC-SHA256 of "<timestamp>.<body>" with the shared secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookFailure(Exception):
    """The call as a whole failed; `code` is what every device of the call answers Google."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class WebhookCommand:
    command_id: str
    device: Device
    run: CommandRun

    def body(self) -> dict[str, Any]:
        execution = self.run.execution
        return {
            "commandId": self.command_id,
            "deviceId": self.device.id,
            "command": execution.command,
            "params": dict(execution.params),
            "expectsResult": self.run.long_running,
        }


@dataclass(frozen=True)
class DeviceAnswer:
    """What one device's commands came to, and which of them the maker will complete later (PENDING)."""

    outcome: RemoteOutcome
    pending: frozenset[str] = frozenset()


def _allowed_url(url: str) -> str | None:
    """Why `url` may not receive commands (None: it may): HTTPS, or plain HTTP to this machine only (local stack)."""
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname:
        return "WEBHOOK_URL is not an absolute URL"
    if parsed.scheme == "https":
        return None
    if parsed.scheme == "http":
        host = parsed.hostname
        try:
            if host == "localhost" or ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return "WEBHOOK_URL must be https (plain http only to this machine)"
    return f"WEBHOOK_URL has the scheme {parsed.scheme!r}, not https"


class WebhookClient:
    """Signs and sends one EXECUTE's webhook commands; urllib, so the fulfillment needs no HTTP library."""

    def __init__(self, url: str, secret: str, timeout_s: float, clock_s: Callable[[], float] = time.time) -> None:
        self._url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._clock_s = clock_s
        # No redirects: a signed command goes where WEBHOOK_URL says, or nowhere.
        self._opener = urllib.request.build_opener(_NoRedirects)

    @property
    def endpoint(self) -> str:
        """Where the calls go, for logs: scheme and host only (a URL's path or query may carry a key)."""
        parsed = urllib.parse.urlsplit(self._url)
        return f"{parsed.scheme}://{parsed.netloc}"

    def call(self, agent_user_id: str, request_id: str, commands: Sequence[WebhookCommand]) -> list[Any]:
        """The maker's `results`, unchecked (see `device_answers`); raises WebhookFailure."""
        if not self._url:
            raise WebhookFailure(HARD_ERROR, "a device has the webhook backend, but WEBHOOK_URL is not set")
        refused = _allowed_url(self._url)
        if refused:
            raise WebhookFailure(HARD_ERROR, refused)
        if not self._secret:
            raise WebhookFailure(HARD_ERROR, "WEBHOOK_SECRET is not set: commands are never sent unsigned")
        body = json_values.dumps(
            {"requestId": request_id, "agentUserId": agent_user_id, "commands": [c.body() for c in commands]}
        ).encode()
        timestamp = str(int(self._clock_s()))
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            self._url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: signature(self._secret, timestamp, body),
            },
        )
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                raw = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as error:
            if error.code >= 500:
                raise WebhookFailure(errors.TRANSIENT_ERROR, f"the webhook answered {error.code}") from error
            # 3xx and 4xx: the maker refused the call (a wrong secret, a moved endpoint): a configuration error.
            raise WebhookFailure(HARD_ERROR, f"the webhook refused the call with {error.code}") from error
        except (TimeoutError, urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise WebhookFailure(errors.TRANSIENT_ERROR, f"the webhook did not answer: {reason}") from error
        if len(raw) > MAX_ANSWER_BYTES:
            raise WebhookFailure(HARD_ERROR, "the webhook's answer is over 1 MB")
        try:
            answer = json_values.loads(raw.decode())
        except (UnicodeDecodeError, ValueError) as problem:
            raise WebhookFailure(HARD_ERROR, f"the webhook's answer is not JSON: {problem}") from problem
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise WebhookFailure(HARD_ERROR, 'the webhook\'s answer is not {"results": [...]}')
        results: list[Any] = answer["results"]
        return results


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def default_client() -> WebhookClient:
    """The client the settings describe (WEBHOOK_URL, WEBHOOK_SECRET, WEBHOOK_TIMEOUT_S), read when it is built."""
    return WebhookClient(config.webhook_url(), config.webhook_secret(), config.webhook_timeout_s())


def device_answers(
    request_id: str, commands: Sequence[WebhookCommand], results: Sequence[Any]
) -> dict[str, DeviceAnswer]:
    """Each device's outcome from the maker's results, checked against the device's traits."""
    by_id: dict[str, Mapping[str, Any]] = {}
    wanted = {command.command_id for command in commands}
    problems: dict[str, str] = {}  # command id -> why its result does not hold up
    for index, result in enumerate(results):
        command_id = result.get("commandId") if isinstance(result, dict) else None
        if not isinstance(command_id, str) or command_id not in wanted:
            log.warning(
                "webhook result for no command of the call: ignored",
                extra={"requestId": request_id, "index": index, "commandId": str(command_id)[:80]},
            )
            continue
        if command_id in by_id:
            problems[command_id] = "two results for one command"
        by_id[command_id] = result
    return {device.id: _device_answer(request_id, device, own, by_id, problems) for device, own in _by_device(commands)}


def failed(commands: Sequence[WebhookCommand], code: str) -> dict[str, DeviceAnswer]:
    """Every device of a call that failed as a whole: `code`, nothing stored."""
    return {device.id: DeviceAnswer(RemoteOutcome("ERROR", code)) for device, _ in _by_device(commands)}


def _by_device(commands: Sequence[WebhookCommand]) -> list[tuple[Device, list[WebhookCommand]]]:
    grouped: dict[str, tuple[Device, list[WebhookCommand]]] = {}
    for command in commands:
        grouped.setdefault(command.device.id, (command.device, []))[1].append(command)
    return list(grouped.values())


def _device_answer(
    request_id: str,
    device: Device,
    commands: Sequence[WebhookCommand],
    results: Mapping[str, Mapping[str, Any]],
    problems: Mapping[str, str],
) -> DeviceAnswer:
    """The device's commands in request order: their statuses make its outcome (OFFLINE before ERROR before
    PENDING before SUCCESS); the states of its SUCCESS commands are stored, whatever the outcome."""
    changes: list[dict[str, Any]] = []
    statuses: list[str] = []
    error_code: str | None = None
    pending: set[str] = set()
    current = device
    for command in commands:
        result = results.get(command.command_id)
        problem = problems.get(command.command_id) or (
            "no result for the command" if result is None else _result_problem(current, result)
        )
        if problem:
            log.error(
                "webhook answer refused: the device answers hardError",
                extra={
                    "requestId": request_id,
                    "deviceId": device.id,
                    "commandId": command.command_id,
                    "command": command.run.execution.command,
                    "reason": problem[:1000],
                },
            )
            return DeviceAnswer(RemoteOutcome("ERROR", HARD_ERROR))
        assert result is not None
        status = str(result["status"])
        statuses.append(status)
        if status == "SUCCESS":
            states = result.get("states")
            change = dict(states) if isinstance(states, dict) else dict(command.run.effect.state)
            change.pop("online", None)
            changes.append(change)
            current = current.with_state(change)
        elif status == "PENDING":
            pending.add(command.command_id)
        elif status == "ERROR" and error_code is None:
            error_code = str(result["errorCode"])
    if "OFFLINE" in statuses:
        outcome = RemoteOutcome("OFFLINE", errors.DEVICE_OFFLINE, tuple(changes))
    elif error_code is not None:
        outcome = RemoteOutcome("ERROR", error_code, tuple(changes))
    else:
        outcome = RemoteOutcome("PENDING" if pending else "SUCCESS", None, tuple(changes))
    return DeviceAnswer(outcome, frozenset(pending))


def _is_error_code(code: Any) -> bool:
    """Shaped like one of Google's codes (camelCase letters and digits); Google keeps the list."""
    return isinstance(code, str) and 0 < len(code) <= 64 and code[0].isalpha() and set(code) <= _ERROR_CODE_CHARS


def _result_problem(device: Device, result: Mapping[str, Any]) -> str | None:
    """Why one result does not hold up for `device` as it is before the command (None: it does)."""
    unknown = sorted(set(result) - RESULT_FIELDS)
    if unknown:
        return f"unknown fields {', '.join(unknown)}"
    status = result.get("status")
    if status not in STATUSES:
        return f"status {json.dumps(status)[:60]} is not one of {', '.join(STATUSES)}"
    if status == "ERROR" and not _is_error_code(result.get("errorCode")):
        return "an ERROR needs an errorCode, one of Google's codes (e.g. deviceJammingDetected)"
    states = result.get("states")
    if states is None or status != "SUCCESS":
        return None
    if not isinstance(states, dict):
        return "states must be an object"
    online = states.get("online", True)
    if not isinstance(online, bool):
        return "states.online must be true or false"
    unknown = sorted(set(states) - device.reportable_keys() - {"online"})
    if unknown:
        return f"states {', '.join(unknown)}: not states of the device's traits"
    after = device.with_state({key: value for key, value in states.items() if key != "online"})
    invalid = [problem for trait in device.traits for problem in trait.state_errors(device.attributes, after.state)]
    return "; ".join(invalid) or None
