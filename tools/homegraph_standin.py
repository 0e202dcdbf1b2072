"""A local stand-in for Google's HomeGraph API (v1 REST), for tests, benchmarks and the local stack.

It speaks the endpoints the backend calls, at the paths the discovery client uses:

    POST   /v1/devices:requestSync                 {"agentUserId", "async"}
    POST   /v1/devices:reportStateAndNotification  {"requestId", "eventId", "agentUserId", "payload": {"devices":
                                                     {"states": {id: {...}}, "notifications": {id: {...}}}}}
    POST   /v1/devices:query                       {"requestId", "agentUserId", "inputs": [{"payload": {"devices"}}]}
    POST   /v1/devices:sync                        {"requestId", "agentUserId"}
    DELETE /v1/agentUsers/{agentUserId}            (the client's path template is v1/{+agentUserId})

and behaves the way Google documents it:
  * bodies are checked against the API's own discovery schemas (shipped with google-api-python-client):
    unknown fields, wrong JSON types and malformed JSON get 400 INVALID_ARGUMENT with Google's message shapes;
  * an agentUserId that is unknown or unlinked gets 404 NOT_FOUND (every method), and so does a report naming a
    device that the last SYNC did not list (or listed less than `sync_settle_s` ago: Google needs time to process
    a SYNC); devices:query of a known user answers the devices it knows and leaves the others out (Google's
    reference documents no per-device error for it, only that the answer has the QUERY response's format);
  * reported state keys outside the device's traits get 400 (the discovery document says INVALID_ARGUMENT);
    proactive notifications need an eventId and a device whose SYNC says notificationSupportedByAgent;
  * a second sync-mode requestSync (async false) of a user while one runs gets 429 RESOURCE_EXHAUSTED;
  * requestSync makes it call the fulfillment's SYNC and then QUERY, as Google does (async: in the background);
    the bearer token comes from a pluggable token source (the account-linking side of Google).

Everything is recorded: every call with its body, status and answer, the SYNC and QUERY calls it made, the
reported state per user and device, and the notifications (deduplicated per eventId, as Google announces an
event once). Faults (status codes, delays, a failure rate) can be injected for tests and benchmarks.

It also acts as Google toward the fulfillment on request (`fulfill`: the `google ...` CLI and the page send their
SYNC, QUERY, EXECUTE and DISCONNECT through it, so they are recorded with the rest and Google's view follows them),
holds one access token per linked user like Google does (forgotten on DISCONNECT and unlink, a new one on link),
and serves the Google Home page at / (tools/home_page.py): what Google holds per user, live, with controls.

Control endpoints (not part of Google's API) live under /standin/: see `_ControlApi`. Python callers use the
`StandIn` object directly (same data). Run alone with `python -m tools.homegraph_standin --help`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import itertools
import json
import logging
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

TokenSource = Callable[[str], str]  # agentUserId -> bearer token for the fulfillment (a `forget(user)` is optional)
Listener = Callable[[dict[str, Any]], None]  # told of every recorded call, after it is recorded

# google.rpc.Code names of the HTTP statuses Google answers with.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "The request timed out.",
}
# The methods of the API, by the last part of their path; `*` in a fault matches any of them.
METHODS = ("requestSync", "reportStateAndNotification", "query", "sync", "agentUsers.delete")
REQUEST_SCHEMAS = {
    "requestSync": "RequestSyncDevicesRequest",
    "reportStateAndNotification": "ReportStateAndNotificationRequest",
    "query": "QueryRequest",
    "sync": "SyncRequest",
}
MAX_BODY_BYTES = 2_000_000
SYNC_INTENT = "action.devices.SYNC"
QUERY_INTENT = "action.devices.QUERY"
DISCONNECT_INTENT = "action.devices.DISCONNECT"


class GoogleError(Exception):
    """An error answer, shaped like Google's JSON error body."""

    def __init__(self, status: int, message: str | None = None, violations: list[tuple[str, str]] | None = None):
        super().__init__(message or DEFAULT_MESSAGES.get(status, "error"))
        self.status = status
        self.message = message or DEFAULT_MESSAGES.get(status, "error")
        self.violations = violations or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "status": STATUS_NAMES.get(self.status, "UNKNOWN"),
        }
        if self.violations:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": f, "description": d} for f, d in self.violations],
                }
            ]
        return {"error": error}


# Body validation against the discovery document's schemas (the JSON mapping of the API's protos).


@cache
def discovery_schemas() -> dict[str, Any]:
    from googleapiclient.discovery_cache import get_static_doc

    document = get_static_doc("homegraph", "v1")
    if document is None:
        raise RuntimeError("google-api-python-client has no static discovery document for homegraph v1")
    schemas: dict[str, Any] = json.loads(document)["schemas"]
    return schemas


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _at(where: str) -> str:
    return f" at '{where}'" if where else ""


def _type_name(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "object")
    fmt = schema.get("format", "")
    if kind == "string" and fmt in ("int64", "uint64"):
        return "TYPE_INT64"
    if kind == "string" and "enum" in schema:
        return "TYPE_ENUM"
    return {
        "string": "TYPE_STRING",
        "boolean": "TYPE_BOOL",
        "integer": "TYPE_INT32",
        "number": "TYPE_DOUBLE",
        "array": "TYPE_MESSAGE",
        "object": "TYPE_MESSAGE",
    }.get(kind, "TYPE_MESSAGE")


def _invalid_value(schema: Mapping[str, Any], where: str, value: Any) -> GoogleError:
    shown = json.dumps(value)[:80]
    return GoogleError(
        400, f"Invalid value at '{where}' ({_type_name(schema)}), {shown}", [(where, f"Invalid value {shown}")]
    )


def conform(schema_ref: str, value: Any) -> dict[str, Any]:
    """The body with lowerCamelCase field names, or GoogleError(400) like Google's JSON parser gives."""
    if not isinstance(value, dict):
        raise GoogleError(400, "Invalid JSON payload received. Expected an object at the top level.")
    checked = _conform({"$ref": schema_ref}, value, "")
    assert isinstance(checked, dict)
    return checked


def _conform(schema: Mapping[str, Any], value: Any, where: str) -> Any:
    schemas = discovery_schemas()
    while "$ref" in schema:
        schema = schemas[schema["$ref"]]
    if value is None:
        return None  # proto3 JSON: null means the field's default
    kind = schema.get("type", "object")
    if kind == "any":
        return value
    if kind == "object":
        if not isinstance(value, dict):
            raise _invalid_value(schema, where, value)
        properties: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        if extra is not None and not properties:  # a map (or a Struct)
            return {key: _conform(extra, item, f"{where}[{key}]" if where else key) for key, item in value.items()}
        checked: dict[str, Any] = {}
        for key, item in value.items():
            name = key if key in properties else _camel(key) if _camel(key) in properties else None
            if name is None:
                raise GoogleError(
                    400,
                    f'Invalid JSON payload received. Unknown name "{key}"{_at(where)}: Cannot find field.',
                    [(where, f'Invalid JSON payload received. Unknown name "{key}"{_at(where)}: Cannot find field.')],
                )
            path = f"{where}.{_snake(name)}" if where else _snake(name)
            checked[name] = _conform(properties[name], item, path)
        return checked
    if kind == "array":
        if not isinstance(value, list):
            raise _invalid_value(schema, where, value)
        return [_conform(schema.get("items", {"type": "any"}), item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind == "string":
        if schema.get("format") in ("int64", "uint64") and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise _invalid_value(schema, where, value)
        if "enum" in schema and value not in schema["enum"]:
            raise _invalid_value(schema, where, value)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _invalid_value(schema, where, value)
        return value
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid_value(schema, where, value)
        return value
    return value


def _intent(intent: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
    single: dict[str, Any] = {"intent": intent}
    if payload is not None:
        single["payload"] = dict(payload)
    return {"requestId": str(uuid.uuid4()), "inputs": [single]}


def intent_of(request: Any) -> str | None:
    """The intent of a fulfillment request body (its first input's), or None."""
    inputs = request.get("inputs") if isinstance(request, Mapping) else None
    first = inputs[0] if isinstance(inputs, list) and inputs else None
    intent = first.get("intent") if isinstance(first, dict) else None
    return intent if isinstance(intent, str) else None


# What the stand-in keeps per user.


@dataclass
class UserRecord:
    linked: bool = True
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # SYNC device objects by id
    known_since: dict[str, float] = field(default_factory=dict)  # when each device appeared in a SYNC
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # device id -> states (QUERY + reports)
    syncs: int = 0
    sync_mode_running: bool = False
    sync_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Fault:
    """Applied to matching calls: wait `delay_s`, then answer `status` (if set) instead of handling the call."""

    method: str = "*"
    agent_user_id: str | None = None
    status: int | None = None
    delay_s: float = 0.0
    rate: float = 1.0  # the share of matching calls it hits
    times: int | None = None  # hits left; None: no limit
    message: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise GoogleError(400, "a fault must be an object")
        known = {"method", "agentUserId", "status", "delayS", "rate", "times", "message"}
        unknown = set(data) - known
        if unknown:
            raise GoogleError(400, f"unknown fault fields: {sorted(unknown)}; known: {sorted(known)}")
        method = data.get("method", "*")
        if method != "*" and method not in METHODS:
            raise GoogleError(400, f"fault method must be * or one of {METHODS}")
        status = data.get("status")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise GoogleError(400, "fault status must be an HTTP error status (400-599)")
        fault = cls(
            method=method,
            agent_user_id=data.get("agentUserId"),
            status=status,
            delay_s=float(data.get("delayS", 0.0)),
            rate=float(data.get("rate", 1.0)),
            times=data.get("times"),
            message=data.get("message"),
        )
        if fault.delay_s < 0 or not 0 <= fault.rate <= 1 or (fault.times is not None and fault.times < 0):
            raise GoogleError(400, "delayS must be >= 0, rate within [0, 1], times >= 0")
        return fault

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "agentUserId": self.agent_user_id,
            "status": self.status,
            "delayS": self.delay_s,
            "rate": self.rate,
            "times": self.times,
            "message": self.message,
        }

    def matches(self, method: str, agent_user_id: str | None) -> bool:
        return (
            (self.method in ("*", method))
            and (self.agent_user_id is None or self.agent_user_id == agent_user_id)
            and (self.times is None or self.times > 0)
        )


# Token sources: how the stand-in, playing Google, holds a user's access token for the fulfillment.


class StaticTokens:
    """Tokens handed over explicitly (tests)."""

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {})

    def __call__(self, agent_user_id: str) -> str:
        try:
            return self.tokens[agent_user_id]
        except KeyError:
            raise LookupError(f"no token for {agent_user_id!r}") from None

    def forget(self, agent_user_id: str | None = None) -> None:
        """Tokens handed over stay: a test that hands one over decides when it goes."""


class FirestoreTokenSource:
    """Mints access tokens the way account linking stores them (functions.core.tokens.issue), cached per user.

    For the local stack and end-to-end tests: the stand-in then holds a valid token like Google would.
    """

    def __init__(self, db: Any = None, ttl_s: int = 3600) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, agent_user_id: str) -> str:
        from functions.core import tokens
        from functions.platform.firestore import FirestoreTokenStore

        with self._lock:
            cached = self._cache.get(agent_user_id)
            if cached and cached[1] > time.time() + 60:
                return cached[0]
            now_ms = int(time.time() * 1000)
            token = tokens.issue(FirestoreTokenStore(self._db), tokens.ACCESS, agent_user_id, self._ttl_s, now_ms)
            self._cache[agent_user_id] = (token, time.time() + self._ttl_s)
            return token

    def forget(self, agent_user_id: str | None = None) -> None:
        """Drops the user's token (every user's without one): the next call mints a new one, as after a new
        account linking. DISCONNECT deleted the old one in Firestore; keeping it would only get 401s."""
        with self._lock:
            if agent_user_id is None:
                self._cache.clear()
            else:
                self._cache.pop(agent_user_id, None)


def _reportable_keys(device: Mapping[str, Any]) -> frozenset[str] | None:
    """The state keys a SYNC device object's traits define (plus `online`); None if its traits are unknown here."""
    from functions.core import traits as trait_registry
    from functions.core.device import Device

    names = device.get("traits") or []
    if any(trait_registry.get(name) is None for name in names):
        return None
    definition = {key: value for key, value in device.items() if key != "id"}
    return Device(str(device.get("id")), definition).reportable_keys() | {"online"}


class StandIn:
    """The HomeGraph stand-in: `StandIn(...).start()`, then point HOMEGRAPH_ENDPOINT at `.url`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fulfillment_url: str | None = None,
        token_source: TokenSource | None = None,
        sync_settle_s: float = 0.0,
        auto_link: bool = False,
        fulfillment_timeout_s: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.fulfillment_url = fulfillment_url
        self.token_source = token_source
        self.sync_settle_s = sync_settle_s
        self.auto_link = auto_link
        self.fulfillment_timeout_s = fulfillment_timeout_s
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._users: dict[str, UserRecord] = {}
        self._calls: list[dict[str, Any]] = []
        self._notifications: list[dict[str, Any]] = []
        self._announced: set[tuple[str, str, str, str]] = set()
        self._faults: list[Fault] = []
        self._seq = itertools.count(1)
        self._issued_tokens: dict[str, int] = {}  # OAuth token endpoint: token -> its number
        self._token_requests: list[dict[str, Any]] = []
        self._background: set[threading.Thread] = set()
        self._in_flight = 0  # API calls being answered (a delayed one must not land in the next test's record)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.listeners: list[Listener] = []  # e.g. the local stack's terminal, one line per call
        self._version = 0  # grows with every change the page shows (calls, states, links)

    # lifecycle

    def start(self) -> StandIn:
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="homegraph-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.wait_background(5)

    def __enter__(self) -> StandIn:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Forgets users, records and faults (the configuration stays), once calls being answered are done."""
        self.wait_background(10)
        deadline = time.monotonic() + 10
        with self._changed:
            while self._in_flight and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            self._users.clear()
            self._calls.clear()
            self._notifications.clear()
            self._announced.clear()
            self._faults.clear()
            self._token_requests.clear()
            self._issued_tokens.clear()
            self._changed_now()

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Waits until no call is being answered and no SYNC/QUERY round runs; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._in_flight and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
        return self.wait_background(max(0.0, deadline - time.monotonic())) and not self._in_flight

    def wait_background(self, timeout_s: float) -> bool:
        """Waits for the SYNC/QUERY rounds started by async requestSyncs; False if some still run."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                running = [t for t in self._background if t.is_alive()]
                self._background = set(running)
            if not running:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            running[0].join(remaining)

    # users

    def link(self, agent_user_id: str, *, sync: bool = True, devices: Iterable[Mapping[str, Any]] = ()) -> bool:
        """The user links their account: Google knows them from now on and (with `sync`) runs SYNC then QUERY.

        `devices` (SYNC device objects) seeds what Google knows without asking the fulfillment. Returns False
        if the SYNC failed (see the fulfillment.SYNC record).
        """
        self._forget_token(agent_user_id)  # a new linking: Google holds new tokens from now on
        with self._lock:
            user = self._users.setdefault(agent_user_id, UserRecord())
            user.linked = True
            now = time.time()
            for device in devices:
                device_id = str(device["id"])
                user.devices[device_id] = copy.deepcopy(dict(device))
                user.known_since[device_id] = now - self.sync_settle_s
            self._changed_now()
        return self._sync_and_query(agent_user_id, reason="link") if sync else True

    def unlink(self, agent_user_id: str) -> bool:
        """The user unlinks (or Google forgets them): every later call for them gets 404, and their token is gone."""
        self._forget_token(agent_user_id)
        with self._lock:
            user = self._users.get(agent_user_id)
            if user is None or not user.linked:
                return False
            user.linked = False
            user.devices.clear()
            user.known_since.clear()
            user.states.clear()
            self._changed_now()
            return True

    def users(self) -> list[str]:
        """Every user Google knows of (linked or not any more), in the order they first appeared."""
        with self._lock:
            return list(self._users)

    def sync_problem(self, agent_user_id: str) -> str | None:
        """Why the user's last SYNC failed (from its record), or None if it succeeded or none ran."""
        syncs = self.calls("fulfillment.SYNC", agent_user_id)
        if not syncs:
            return None
        last = syncs[-1]
        if last.get("error"):
            return str(last["error"])
        if last.get("status") != 200:
            return f"the fulfillment answered {last.get('status')}: {json.dumps(last.get('response'))[:300]}"
        payload = (last.get("response") or {}).get("payload") if isinstance(last.get("response"), dict) else None
        if not isinstance(payload, dict) or payload.get("errorCode"):
            return f"the fulfillment's SYNC answer has an error: {json.dumps(payload)[:300]}"
        return None

    def _forget_token(self, agent_user_id: str) -> None:
        forget = getattr(self.token_source, "forget", None)
        if callable(forget):
            forget(agent_user_id)

    # changes, for the page

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def _changed_now(self) -> None:
        """Called with the lock held: something the page shows changed."""
        self._version += 1
        self._changed.notify_all()

    def wait_for_change(self, after: int, timeout_s: float) -> int:
        """Blocks until the version passes `after` (or the timeout); returns the version."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._version <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._version

    def user(self, agent_user_id: str) -> dict[str, Any] | None:
        with self._lock:
            user = self._users.get(agent_user_id)
            if user is None:
                return None
            return {
                "agentUserId": agent_user_id,
                "linked": user.linked,
                "devices": copy.deepcopy(list(user.devices.values())),
                "states": copy.deepcopy(user.states),
                "syncs": user.syncs,
            }

    def states(self, agent_user_id: str) -> dict[str, dict[str, Any]]:
        """The state Google holds per device of the user (from QUERY after SYNC and from reports)."""
        with self._lock:
            user = self._users.get(agent_user_id)
            return copy.deepcopy(user.states) if user else {}

    # records

    def calls(
        self, method: str | None = None, agent_user_id: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Recorded calls in arrival order; `method` is e.g. requestSync or fulfillment.SYNC."""
        with self._lock:
            return [
                copy.deepcopy(c)
                for c in self._calls
                if c["seq"] > since
                and (method is None or c["method"] == method)
                and (agent_user_id is None or c["agentUserId"] == agent_user_id)
            ]

    def notifications(self, agent_user_id: str | None = None) -> list[dict[str, Any]]:
        """Notifications received, each with `duplicate` set when its eventId was announced before."""
        with self._lock:
            return [copy.deepcopy(n) for n in self._notifications if agent_user_id in (None, n["agentUserId"])]

    def token_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._token_requests)

    def wait_for_calls(
        self, method: str, count: int, agent_user_id: str | None = None, timeout_s: float = 10.0
    ) -> list[dict[str, Any]]:
        """Blocks until at least `count` matching calls are recorded (or the timeout); returns them."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = self.calls(method, agent_user_id)
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._changed.wait(remaining)

    # faults

    def set_faults(self, faults: Iterable[Fault | Mapping[str, Any]]) -> None:
        parsed = [f if isinstance(f, Fault) else Fault.from_json(dict(f)) for f in faults]
        with self._lock:
            self._faults = parsed

    def add_fault(self, **fields: Any) -> Fault:
        fault = Fault(**fields)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def _fault_for(self, method: str, agent_user_id: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, agent_user_id) and self._random.random() < fault.rate:
                    if fault.times is not None:
                        fault.times -= 1
                    return copy.copy(fault)
        return None

    # recording

    def _record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._changed:
            entry["seq"] = next(self._seq)
            self._calls.append(entry)
            self._changed_now()
            listeners = list(self.listeners)
            shown = copy.deepcopy(entry) if listeners else entry
        for listener in listeners:
            try:
                listener(shown)
            except Exception:  # a listener's failure is not the call's
                log.exception("stand-in listener failed")
        return entry

    # the API

    def handle(self, http_method: str, path: str, raw: bytes, caller: str) -> tuple[int, dict[str, Any]]:
        """Answers one API call (status, JSON body) and records it."""
        with self._lock:
            self._in_flight += 1
        try:
            return self._handle(http_method, path, raw, caller)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _handle(self, http_method: str, path: str, raw: bytes, caller: str) -> tuple[int, dict[str, Any]]:
        started = time.time()
        method, agent_user_id, request = self._identify(http_method, path, raw)
        entry: dict[str, Any] = {
            "method": method,
            "httpMethod": http_method,
            "path": path,
            "agentUserId": agent_user_id,
            "request": request,
            "caller": caller,
            "at": started,
        }
        fault = self._fault_for(method, agent_user_id) if method in METHODS else None
        try:
            if fault is not None:
                entry["fault"] = fault.to_json()
                if fault.delay_s:
                    time.sleep(fault.delay_s)
                if fault.status is not None:
                    raise GoogleError(fault.status, fault.message)
            status, body = 200, self._dispatch(method, http_method, path, raw)
        except GoogleError as error:
            status, body = error.status, error.body()
        entry.update(status=status, response=body, finishedAt=time.time())
        self._record(entry)
        return status, body

    def _identify(self, http_method: str, path: str, raw: bytes) -> tuple[str, str | None, Any]:
        """Which method a call is, whose, and its body as recorded (JSON if it parses, else text)."""
        request: Any
        try:
            request = json.loads(raw) if raw else None
        except ValueError:
            request = raw.decode("utf-8", "replace")
        if http_method == "DELETE" and path.startswith("/v1/agentUsers/"):
            return "agentUsers.delete", urllib.parse.unquote(path[len("/v1/agentUsers/") :]), request
        name = path[len("/v1/devices:") :] if path.startswith("/v1/devices:") else path
        user = request.get("agentUserId") if isinstance(request, dict) else None
        return name, user if isinstance(user, str) else None, request

    def _dispatch(self, method: str, http_method: str, path: str, raw: bytes) -> dict[str, Any]:
        if method == "agentUsers.delete":
            return self._delete_agent_user(path)
        if method not in REQUEST_SCHEMAS or http_method != "POST":
            raise GoogleError(404, f"Method not found: {http_method} {path}")
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError as problem:
            raise GoogleError(400, f"Invalid JSON payload received. {problem}") from problem
        body = conform(REQUEST_SCHEMAS[method], parsed)
        handler: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, "_" + _snake(method))
        return handler(body)

    def _linked_user(self, agent_user_id: Any) -> UserRecord:
        if not isinstance(agent_user_id, str) or not agent_user_id:
            raise GoogleError(400, None, [("agent_user_id", "agentUserId is required")])
        with self._lock:
            user = self._users.get(agent_user_id)
            if (user is None or not user.linked) and self.auto_link:
                user = self._users.setdefault(agent_user_id, UserRecord())
                user.linked = True
            if user is None or not user.linked:
                raise GoogleError(404)
            return user

    def _request_sync(self, body: dict[str, Any]) -> dict[str, Any]:
        agent_user_id = body.get("agentUserId")
        user = self._linked_user(agent_user_id)
        assert isinstance(agent_user_id, str)
        if body.get("async"):
            worker = threading.Thread(
                target=self._sync_and_query, args=(agent_user_id, "requestSync"), name="standin-sync", daemon=True
            )
            with self._lock:
                self._background.add(worker)
            worker.start()
            return {}
        with self._lock:
            if user.sync_mode_running:
                raise GoogleError(429, "A SYNC for this agentUserId is already in progress.")
            user.sync_mode_running = True
        try:
            if not self._sync_and_query(agent_user_id, reason="requestSync"):
                raise GoogleError(
                    400, "The SYNC of the fulfillment failed; see the stand-in's fulfillment.SYNC record."
                )
        finally:
            with self._lock:
                user.sync_mode_running = False
        return {}

    def _report_state_and_notification(self, body: dict[str, Any]) -> dict[str, Any]:
        agent_user_id = body.get("agentUserId")
        user = self._linked_user(agent_user_id)
        payload = body.get("payload")
        devices = payload.get("devices") if isinstance(payload, dict) else None
        if not isinstance(devices, dict):
            raise GoogleError(400, None, [("payload.devices", "payload.devices is required")])
        states = devices.get("states") or {}
        notifications = devices.get("notifications") or {}
        if not states and not notifications:
            raise GoogleError(400, None, [("payload.devices", "neither states nor notifications given")])
        event_id = body.get("eventId")
        if notifications and not event_id:
            raise GoogleError(400, None, [("event_id", "an eventId is required with notifications")])
        now = time.time()
        with self._lock:
            for device_id, device_states in states.items():
                device = self._known_device(user, device_id, now)
                if not isinstance(device_states, dict):
                    raise GoogleError(400, None, [(f"payload.devices.states[{device_id}]", "must be an object")])
                allowed = _reportable_keys(device)
                unknown = sorted(set(device_states) - allowed) if allowed is not None else []
                if unknown:
                    raise GoogleError(
                        400,
                        f"Request contains an invalid argument: device {device_id} has no trait reporting {unknown}.",
                        [(f"payload.devices.states[{device_id}]", f"unknown states {unknown}")],
                    )
            for device_id, by_trait in notifications.items():
                device = self._known_device(user, device_id, now)
                if not isinstance(by_trait, dict) or not by_trait:
                    raise GoogleError(400, None, [(f"payload.devices.notifications[{device_id}]", "must be an object")])
                shorts = {str(t).rsplit(".", 1)[-1] for t in device.get("traits", [])}
                for trait, notification in by_trait.items():
                    if trait not in shorts or not isinstance(notification, dict):
                        raise GoogleError(
                            400,
                            f"Request contains an invalid argument: device {device_id} has no trait {trait}.",
                            [(f"payload.devices.notifications[{device_id}].{trait}", "not a trait of the device")],
                        )
                    if "followUpResponse" not in notification and not device.get("notificationSupportedByAgent"):
                        raise GoogleError(
                            400,
                            f"Request contains an invalid argument: device {device_id} does not declare "
                            "notificationSupportedByAgent.",
                            [(f"payload.devices.notifications[{device_id}]", "notifications not supported")],
                        )
            # Valid: apply (HomeGraph overwrites what is reported, per trait).
            for device_id, device_states in states.items():
                user.states.setdefault(device_id, {}).update(copy.deepcopy(device_states))
            for device_id, by_trait in notifications.items():
                for trait, notification in by_trait.items():
                    key = (str(agent_user_id), str(event_id), device_id, trait)
                    self._notifications.append(
                        {
                            "agentUserId": agent_user_id,
                            "eventId": event_id,
                            "requestId": body.get("requestId"),
                            "deviceId": device_id,
                            "trait": trait,
                            "notification": copy.deepcopy(notification),
                            "duplicate": key in self._announced,
                            "at": now,
                        }
                    )
                    self._announced.add(key)
        return {"requestId": body.get("requestId", "")}

    def _knows(self, user: UserRecord, device_id: str, now: float) -> bool:
        """Whether a SYNC listed the device at least `sync_settle_s` ago."""
        return device_id in user.devices and now - user.known_since.get(device_id, now) >= self.sync_settle_s

    def _known_device(self, user: UserRecord, device_id: str, now: float) -> dict[str, Any]:
        if not self._knows(user, device_id, now):
            raise GoogleError(404, f"Requested entity was not found: device {device_id} is not known (yet).")
        return user.devices[device_id]

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        user = self._linked_user(body.get("agentUserId"))
        inputs = body.get("inputs") or []
        if not inputs:
            raise GoogleError(400, None, [("inputs", "inputs is required")])
        wanted = [d.get("id") for i in inputs for d in ((i.get("payload") or {}).get("devices") or [])]
        now = time.time()
        with self._lock:
            # A device Google does not know (yet) is left out of the answer, the user's other devices answered.
            found = {
                str(d): copy.deepcopy(user.states.get(str(d), {}))
                for d in wanted
                if isinstance(d, str) and self._knows(user, d, now)
            }
        return {"requestId": body.get("requestId", ""), "payload": {"devices": found}}

    def _sync(self, body: dict[str, Any]) -> dict[str, Any]:
        agent_user_id = body.get("agentUserId")
        user = self._linked_user(agent_user_id)
        with self._lock:
            devices = copy.deepcopy(list(user.devices.values()))
        return {"requestId": body.get("requestId", ""), "payload": {"agentUserId": agent_user_id, "devices": devices}}

    def _delete_agent_user(self, path: str) -> dict[str, Any]:
        agent_user_id = urllib.parse.unquote(path[len("/v1/agentUsers/") :])
        self._linked_user(agent_user_id)
        self.unlink(agent_user_id)
        return {}

    # Google calling the fulfillment

    def _sync_and_query(self, agent_user_id: str, reason: str) -> bool:
        """SYNC the user's devices from the fulfillment, then QUERY their states; True if SYNC succeeded."""
        with self._lock:
            user = self._users.setdefault(agent_user_id, UserRecord())
        with user.sync_lock:  # Google runs one SYNC of a user at a time
            status, sync = self._send(agent_user_id, _intent(SYNC_INTENT), reason)
            if status != 200 or not self._apply_sync(agent_user_id, user, sync):
                return False
            with self._lock:
                device_ids = list(user.devices)
            if device_ids:
                query = _intent(QUERY_INTENT, {"devices": [{"id": d} for d in device_ids]})
                status, answer = self._send(agent_user_id, query, reason)
                if status == 200:
                    self._apply_query(user, answer)
            return True

    def _apply_sync(self, agent_user_id: str, user: UserRecord, answer: Any) -> bool:
        """What Google keeps of a SYNC answer: the devices (states of devices gone are dropped); False if the
        answer is not a usable SYNC answer for this user."""
        payload = answer.get("payload") if isinstance(answer, dict) else None
        if not isinstance(payload, dict) or payload.get("errorCode") or not isinstance(payload.get("devices"), list):
            return False
        if payload.get("agentUserId") != agent_user_id:
            log.warning("SYNC answered for another agentUserId", extra={"agentUserId": agent_user_id})
            return False
        now = time.time()
        with self._lock:
            previous = user.known_since
            user.devices = {str(d.get("id")): copy.deepcopy(d) for d in payload["devices"] if isinstance(d, dict)}
            user.known_since = {d: previous.get(d, now) for d in user.devices}
            user.states = {d: s for d, s in user.states.items() if d in user.devices}
            user.syncs += 1
            self._changed_now()
        return True

    def _apply_query(self, user: UserRecord, answer: Any) -> None:
        answered = ((answer or {}).get("payload") or {}).get("devices") if isinstance(answer, dict) else None
        if not isinstance(answered, dict):
            return
        with self._lock:
            for device_id, states in answered.items():
                if device_id in user.devices and isinstance(states, dict) and states.get("status") != "ERROR":
                    clean = {k: v for k, v in states.items() if k not in ("status", "errorCode")}
                    user.states.setdefault(device_id, {}).update(clean)
            self._changed_now()

    def fulfill(self, agent_user_id: str, request: Mapping[str, Any], caller: str = "cli") -> tuple[int | None, Any]:
        """Sends one intent request to the fulfillment as Google, with the user's token (the `google` CLI and the
        page go through here); returns (HTTP status, answer), or (None, why) when it did not answer. Google's view
        follows the answer: a SYNC replaces the user's devices, a QUERY updates their states, a DISCONNECT
        unlinks the user (and the token goes with it)."""
        intent = intent_of(request)
        if intent == SYNC_INTENT:
            with self._lock:
                user = self._users.get(agent_user_id)
            if user is not None and user.linked:
                with user.sync_lock:
                    status, answer = self._send(agent_user_id, request, None, caller)
                    if status == 200:
                        self._apply_sync(agent_user_id, user, answer)
                return status, answer
        status, answer = self._send(agent_user_id, request, None, caller)
        with self._lock:
            user = self._users.get(agent_user_id)
        if status == 200 and intent == QUERY_INTENT and user is not None and user.linked:
            self._apply_query(user, answer)
        if intent == DISCONNECT_INTENT and status == 200:
            self.unlink(agent_user_id)
        return status, answer

    def _send(
        self, agent_user_id: str, body: Mapping[str, Any], reason: str | None, caller: str = "standin"
    ) -> tuple[int | None, Any]:
        """POSTs `body` to the fulfillment with the user's token and records the call; (status or None, answer)."""
        intent = intent_of(body) or "?"
        entry: dict[str, Any] = {
            "method": "fulfillment." + intent.rsplit(".", 1)[-1],
            "httpMethod": "POST",
            "path": self.fulfillment_url,
            "agentUserId": agent_user_id,
            "request": copy.deepcopy(dict(body)),
            "caller": caller,
            "reason": reason,
            "at": time.time(),
        }
        answer: Any = None
        status: int | None = None
        try:
            if not self.fulfillment_url or self.token_source is None:
                raise LookupError("no fulfillment URL or token source configured")
            token = self.token_source(agent_user_id)
            request = urllib.request.Request(  # noqa: S310 - the configured local fulfillment
                self.fulfillment_url,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.fulfillment_timeout_s) as response:  # noqa: S310
                    status, text = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, text = error.code, error.read()
            entry["status"] = status
            try:
                answer = json.loads(text)
            except ValueError:
                answer = text.decode("utf-8", "replace")
            entry["response"] = answer
            if status == 401:
                # The token is no longer valid (revoked by a DISCONNECT Google did not see): the next call gets a
                # new one, as Google would refresh it.
                self._forget_token(agent_user_id)
        except (LookupError, OSError) as problem:
            entry.update(status=None, response=None, error=str(problem))
            answer = str(problem)
        entry["finishedAt"] = time.time()
        self._record(entry)
        return status, answer

    # OAuth token endpoint (service-account JWT bearer grant), so tests can run the client with real ADC.

    def issue_oauth_token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        assertion = form.get("assertion", "")
        claims: dict[str, Any] = {}
        try:
            part = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (IndexError, ValueError, binascii.Error):
            return 400, {"error": "invalid_grant", "error_description": "the assertion is not a JWT"}
        with self._lock:
            number = len(self._issued_tokens) + 1
            token = f"standin-oauth-{number}-{uuid.uuid4().hex}"
            self._issued_tokens[token] = number
            self._token_requests.append(
                {
                    "grantType": form.get("grant_type"),
                    "scope": claims.get("scope"),
                    "issuer": claims.get("iss"),
                    "number": number,
                }
            )
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def caller_of(self, authorization: str | None) -> str:
        """Who called, without recording any token: `anonymous`, `oauth:<n>` (our token endpoint) or `bearer`."""
        if not authorization:
            return "anonymous"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return "other"
        with self._lock:
            number = self._issued_tokens.get(token.strip())
        return f"oauth:{number}" if number else "bearer"


class _ControlApi:
    """The stand-in's own endpoints, for tests, benchmarks and the CLI (JSON in and out):

    GET    /standin/calls?method=M&agentUserId=U&since=SEQ   {"calls": [...]}
    GET    /standin/users                                      {"users": [agentUserId, ...]} (linked or not)
    GET    /standin/users/U                                    the user: linked, devices, states, syncs
    GET    /standin/users/U/states                             {"devices": {id: states}}
    GET    /standin/notifications?agentUserId=U                {"notifications": [...]}
    POST   /standin/users/U:link     {"sync": true, "devices": [...]}   the user links (Google runs SYNC); with
                                                               "syncProblem" when that SYNC failed
    POST   /standin/users/U:unlink                             the user unlinks
    POST   /standin/users/U:fulfill  {"request": {...}, "caller"}   Google sends the intent request to the
                                                               fulfillment: {"status", "response"}
    GET    /standin/version?after=N&timeoutS=T                 {"version"}: at once if past N, else once it is
    GET    /standin/faults  PUT /standin/faults {"faults": [...]}  DELETE /standin/faults
    PUT    /standin/config  {"fulfillmentUrl", "syncSettleS", "autoLink"}
    POST   /standin/reset                                      forgets users, records and faults
    POST   /standin/wait     {"method", "count", "agentUserId", "timeoutS"}   blocks until recorded
    """

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin

    def handle(self, http_method: str, path: str, query: Mapping[str, list[str]], raw: bytes) -> tuple[int, Any]:
        standin = self.standin
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object"}

        def arg(name: str) -> str | None:
            return query.get(name, [None])[0]

        route = (http_method, path)
        if route == ("GET", "/standin/version"):
            after = int(arg("after") or -1)
            timeout_s = min(max(float(arg("timeoutS") or 0), 0.0), 60.0)
            return 200, {"version": standin.wait_for_change(after, timeout_s)}
        if route == ("GET", "/standin/users"):
            return 200, {"users": standin.users()}
        if route == ("GET", "/standin/calls"):
            since = int(arg("since") or 0)
            return 200, {"calls": standin.calls(arg("method"), arg("agentUserId"), since)}
        if route == ("GET", "/standin/notifications"):
            return 200, {"notifications": standin.notifications(arg("agentUserId"))}
        if route == ("GET", "/standin/faults"):
            return 200, {"faults": standin.faults()}
        if route == ("PUT", "/standin/faults"):
            faults = body.get("faults", [])
            if not isinstance(faults, list):
                return 400, {"error": "faults must be a list"}
            try:
                standin.set_faults(faults)
            except GoogleError as problem:
                return 400, {"error": problem.message}
            return 200, {"faults": standin.faults()}
        if route == ("DELETE", "/standin/faults"):
            standin.clear_faults()
            return 200, {"faults": []}
        if route == ("PUT", "/standin/config"):
            if "fulfillmentUrl" in body:
                standin.fulfillment_url = body["fulfillmentUrl"]
            if "syncSettleS" in body:
                standin.sync_settle_s = float(body["syncSettleS"])
            if "autoLink" in body:
                standin.auto_link = bool(body["autoLink"])
            return 200, {
                "fulfillmentUrl": standin.fulfillment_url,
                "syncSettleS": standin.sync_settle_s,
                "autoLink": standin.auto_link,
            }
        if route == ("POST", "/standin/reset"):
            standin.reset()
            return 200, {}
        if route == ("POST", "/standin/wait"):
            calls = standin.wait_for_calls(
                str(body.get("method", "requestSync")),
                int(body.get("count", 1)),
                body.get("agentUserId"),
                float(body.get("timeoutS", 10)),
            )
            return 200, {"calls": calls}
        if path.startswith("/standin/users/"):
            rest = urllib.parse.unquote(path[len("/standin/users/") :])
            if http_method == "GET" and rest.endswith("/states"):
                return 200, {"devices": standin.states(rest[: -len("/states")])}
            if http_method == "GET":
                user = standin.user(rest)
                return (200, user) if user is not None else (404, {"error": f"unknown user {rest!r}"})
            if http_method == "POST" and rest.endswith(":link"):
                devices = body.get("devices", [])
                if not isinstance(devices, list) or not all(isinstance(d, dict) and "id" in d for d in devices):
                    return 400, {"error": "devices must be a list of SYNC device objects"}
                agent_user_id = rest[: -len(":link")]
                synced = standin.link(agent_user_id, sync=bool(body.get("sync", True)), devices=devices)
                linked: dict[str, Any] = {**(standin.user(agent_user_id) or {}), "synced": synced}
                if not synced:
                    linked["syncProblem"] = standin.sync_problem(agent_user_id)
                return 200, linked
            if http_method == "POST" and rest.endswith(":unlink"):
                return 200, {"unlinked": standin.unlink(rest[: -len(":unlink")])}
            if http_method == "POST" and rest.endswith(":fulfill"):
                request = body.get("request")
                if not isinstance(request, dict) or intent_of(request) is None:
                    return 400, {"error": "request must be a fulfillment request body (requestId, inputs)"}
                status, answer = standin.fulfill(rest[: -len(":fulfill")], request, str(body.get("caller") or "cli"))
                return 200, {"status": status, "response": answer}
        return 404, {"error": f"no control endpoint {http_method} {path}"}


def _handler_for(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    control = _ControlApi(standin)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the discovery client expects

        def _serve(self, http_method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, GoogleError(400, "Request payload size exceeds the limit.").body())
                self.close_connection = True
                return
            raw = self.rfile.read(length) if length else b""
            parts = urllib.parse.urlsplit(self.path)
            path = parts.path
            if path in ("/", "/index.html", "/favicon.ico") or path.startswith("/page/"):
                self._serve_page(http_method, path, raw)
                return
            try:
                if path.startswith("/standin/"):
                    status, body = control.handle(http_method, path, urllib.parse.parse_qs(parts.query), raw)
                elif path == "/token" and http_method == "POST":
                    form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
                    status, body = standin.issue_oauth_token(form)
                else:
                    caller = standin.caller_of(self.headers.get("Authorization"))
                    status, body = standin.handle(http_method, path, raw, caller)
            except Exception:  # a bug of the stand-in: answer like Google's 500, keep serving
                log.exception("stand-in failed")
                status, body = 500, GoogleError(500).body()
            self._answer(status, body)

        def _serve_page(self, http_method: str, path: str, raw: bytes) -> None:
            from tools import home_page

            try:
                served = home_page.serve(standin, http_method, path, raw)
            except Exception:  # a bug of the page: say so, keep serving
                log.exception("the Google Home page failed")
                served = 500, "text/plain; charset=utf-8", b"the page failed; see the stand-in's log"
            status, content_type, data = served or (404, "text/plain; charset=utf-8", b"no such page")
            self._answer(status, data, content_type)

        def _answer(self, status: int, body: Any, content_type: str = "application/json; charset=UTF-8") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the caller gave up waiting (a timeout test); it is recorded anyway

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            return  # every call is recorded; no access log on stderr

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.homegraph_standin", description="Local HomeGraph stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--fulfillment-url", help="the fulfillment Google's SYNC and QUERY go to")
    parser.add_argument(
        "--firestore-tokens",
        action="store_true",
        help="mint the fulfillment's access tokens in Firestore (FIRESTORE_EMULATOR_HOST, FIRESTORE_DATABASE)",
    )
    parser.add_argument("--auto-link", action="store_true", help="treat every agentUserId as linked")
    parser.add_argument("--sync-settle-s", type=float, default=0.0, help="seconds before synced devices are known")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    standin = StandIn(
        host=args.host,
        port=args.port,
        fulfillment_url=args.fulfillment_url,
        token_source=FirestoreTokenSource() if args.firestore_tokens else None,
        auto_link=args.auto_link,
        sync_settle_s=args.sync_settle_s,
    ).start()
    print(f"HomeGraph stand-in at {standin.url} (HOMEGRAPH_ENDPOINT={standin.url})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
