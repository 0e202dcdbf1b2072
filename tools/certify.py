"""`python -m functions google certify`: a dry run of Google's Test Suite for one test account, before submitting.

    google certify --user U [--pin PIN] [--all] [--timeout 10] [--junit FILE] [--device D ...]
    google certify --user U --url URL --token T --project P ...      a deployed fulfillment and the real HomeGraph

What it checks, as Google's Test Suite does (docs/certify.md):
  * SYNC: answered, for this user, every device valid (type, traits, attributes, names) and reporting state;
  * every device: QUERY answers SUCCESS with states that agree with what HomeGraph holds;
  * every command the device's traits and attributes support: an EXECUTE with valid params (generated from the
    trait's params schema and the device's attributes and tried on the trait first, so that it changes the state;
    destructive commands only with --all), two-factor challenges answered (--pin, or the acknowledgement), then
    HomeGraph holds the resulting state within --timeout (the Test Suite reads HomeGraph, not the EXECUTE answer)
    and QUERY agrees with HomeGraph;
  * notifications of the devices that declare notificationSupportedByAgent (local stack: they reach HomeGraph);
  * Request Sync when a temporary device is added, renamed and removed (written to the Firestore registry).

Against the running local stack (`make up`), Google is the HomeGraph stand-in: intents go through it, HomeGraph is
its record. With --url and --token, intents go to that fulfillment and HomeGraph is Google's own, read with
devices.query and devices.sync under Application Default Credentials (a service account of --project allowed to
call the HomeGraph API); the temporary device is written to the Firestore of --project.

Prints a table per device and command; --junit writes the checks as JUnit XML for CI. Exit codes: 0 every check
passed (or was skipped), 1 a check failed, 2 usage.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.core import traits as trait_registry
from functions.core.device import Device, definition_problems
from functions.core.errors import CommandError
from functions.core.schema import errors as schema_errors
from functions.core.traits.base import CommandContext, Trait
from tools import google, local_stack
from tools.cli import Refused  # certify cannot start (no stack, no user, a bad option): one line, exit 1
from tools.google_cli import http_json

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_SYNC_TIMEOUT_S = 60.0  # Request Sync is coalesced per user (REQUEST_SYNC_WINDOW_S), then Google SYNCs
POLL_S = 0.2
MAX_CANDIDATES = 3000  # params tried per command (on the trait, in process: cheap)
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
NOT_STATES = frozenset({"status", "errorCode", "debugString"})
TEMPORARY_DEVICE = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Certify temporary light"},
    "willReportState": True,
}
# Commands a dry run leaves alone unless --all: what they do cannot be taken back by another command.
DESTRUCTIVE: Mapping[str, str] = {
    "action.devices.commands.Reboot": "restarts the device",
    "action.devices.commands.SoftwareUpdate": "installs software",
    "action.devices.commands.Dispense": "dispenses what the device holds",
    "action.devices.commands.appInstall": "installs an app",
    "action.devices.commands.EnableDisableNetworkProfile": "may cut devices off the network",
}


# Where Google is


class Google:
    """Google as the Test Suite plays it: sends intents, and reads what HomeGraph holds."""

    where = ""
    sees_calls = False  # the Request Sync calls themselves can be seen (the stand-in's record)
    sees_notifications = False

    def fulfill(self, request: Mapping[str, Any]) -> tuple[int | None, Any]:
        raise NotImplementedError

    def held_states(self, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def known_devices(self) -> list[dict[str, Any]] | None:
        """The devices HomeGraph knows for the user; None if it does not know the user."""
        raise NotImplementedError

    def mark(self) -> int:
        return 0

    def request_syncs_since(self, mark: int) -> int:
        return 0

    def notifications(self) -> list[dict[str, Any]]:
        return []


class StandInGoogle(Google):
    """The local stack's HomeGraph stand-in: intents go through it (it holds the user's token), HomeGraph is its
    record (its control API under /standin/)."""

    sees_calls = True
    sees_notifications = True

    def __init__(self, url: str, user: str) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self._user_path = urllib.parse.quote(user, safe="")
        self.where = f"the local stack (HomeGraph stand-in at {self.url})"

    def fulfill(self, request: Mapping[str, Any]) -> tuple[int | None, Any]:
        status, body = http_json(
            "POST", f"{self.url}/standin/users/{self._user_path}:fulfill", {"request": request, "caller": "certify"}
        )
        if status != 200 or not isinstance(body, dict):
            raise Refused(f"the stand-in answered {status}: {body}")
        return body.get("status"), body.get("response")

    def held_states(self, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        status, body = http_json("GET", f"{self.url}/standin/users/{self._user_path}/states")
        held = body.get("devices", {}) if status == 200 and isinstance(body, dict) else {}
        return {device_id: dict(held[device_id]) for device_id in device_ids if device_id in held}

    def known_devices(self) -> list[dict[str, Any]] | None:
        status, body = http_json("GET", f"{self.url}/standin/users/{self._user_path}")
        if status != 200 or not isinstance(body, dict) or not body.get("linked"):
            return None
        return [dict(device) for device in body.get("devices", [])]

    def _calls(self, path: str, **query: Any) -> list[dict[str, Any]]:
        status, body = http_json("GET", f"{self.url}/standin/{path}?{urllib.parse.urlencode(query)}")
        key = "calls" if path == "calls" else "notifications"
        return list(body.get(key, [])) if status == 200 and isinstance(body, dict) else []

    def mark(self) -> int:
        return max((int(call["seq"]) for call in self._calls("calls")), default=0)

    def request_syncs_since(self, mark: int) -> int:
        return len(self._calls("calls", method="requestSync", agentUserId=self.user, since=mark))

    def notifications(self) -> list[dict[str, Any]]:
        return self._calls("notifications", agentUserId=self.user)


class DeployedGoogle(Google):
    """A deployed fulfillment (--url, --token) and Google's HomeGraph, read under Application Default Credentials."""

    def __init__(self, url: str, token: str, user: str) -> None:
        from functions.platform.homegraph import HomeGraphClient

        self.url = url
        self.token = token
        self.user = user
        self.homegraph = HomeGraphClient()  # Google's endpoint, ADC with the homegraph scope
        self.where = f"{url} and Google's HomeGraph"

    def fulfill(self, request: Mapping[str, Any]) -> tuple[int | None, Any]:
        return http_json("POST", self.url, dict(request), self.token)

    def held_states(self, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        from functions.platform.homegraph import HomeGraphError

        try:
            answer = self.homegraph.query(self.user, list(device_ids))
        except HomeGraphError:
            return {}
        devices = (answer.body.get("payload") or {}).get("devices") or {}
        return {device_id: dict(states) for device_id, states in devices.items() if isinstance(states, dict)}

    def known_devices(self) -> list[dict[str, Any]] | None:
        from functions.platform.homegraph import HomeGraphError

        try:
            answer = self.homegraph.sync(self.user)
        except HomeGraphError:
            return None
        return [dict(device) for device in (answer.body.get("payload") or {}).get("devices") or []]


# Valid params, from the trait's params schema and the device's attributes


def _strings_in(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            found += _strings_in(item)
    elif isinstance(value, list):
        for item in value:
            found += _strings_in(item)
    return list(dict.fromkeys(found))


def _numbers_in(value: Any) -> list[float]:
    found: list[float] = []
    if isinstance(value, int | float) and not isinstance(value, bool):
        found.append(float(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found += _numbers_in(item)
    elif isinstance(value, list):
        for item in value:
            found += _numbers_in(item)
    return found


@dataclass(frozen=True)
class Pools:
    """What values to try: the device's own strings (mode, toggle, input names, ...) and numbers (ranges)."""

    strings: tuple[str, ...]
    numbers: tuple[float, ...]
    state: Mapping[str, Any]

    @classmethod
    def of(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> Pools:
        numbers = _numbers_in(attributes)
        middles = [(low + high) / 2 for low, high in itertools.combinations(numbers[:12], 2)]
        return cls(tuple(_strings_in(attributes))[:40], tuple(numbers + middles), state)


GENERIC_NUMBERS = (1.0, 2.0, 5.0, 10.0, 20.0, 21.0, 22.0, 25.0, 50.0, 75.0, 100.0, 0.0, -1.0, 2700.0, 4000.0, 60.0)


def _numbers_for(schema: Mapping[str, Any], pools: Pools, key: str | None) -> list[float]:
    low, high = schema.get("minimum"), schema.get("maximum")
    tried: list[float] = []
    current = pools.state.get(key) if key else None
    if isinstance(current, int | float) and not isinstance(current, bool):
        tried += [current + 1, current - 1, current + 2, current - 2, current + 10, current - 10]  # a small change
    if isinstance(low, int | float) and isinstance(high, int | float):
        tried += [(low + high) / 2, low + (high - low) / 4, high, low]
    tried += [*pools.numbers, *GENERIC_NUMBERS]
    whole = schema.get("type") == "integer"
    chosen: list[float] = []
    for value in tried:
        value = float(round(value)) if whole else float(value)
        if (isinstance(low, int | float) and value < low) or (isinstance(high, int | float) and value > high):
            continue
        if value not in chosen:
            chosen.append(value)
    return chosen[:24]


def candidates(schema: Mapping[str, Any], pools: Pools, key: str | None = None) -> list[Any]:
    """Values that may satisfy `schema` (each is checked against it afterwards), small changes first."""
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            rest = {k: v for k, v in schema.items() if k != keyword}
            found: list[Any] = []
            for branch in schema[keyword]:
                merged = {**rest, **branch}
                if "properties" in rest and "properties" in branch:
                    merged["properties"] = {**rest["properties"], **branch["properties"]}
                found += candidates(merged, pools, key)
            return found
    kind = schema.get("type", "object")
    if kind == "boolean":
        current = pools.state.get(key) if key else None
        return [not current, current] if isinstance(current, bool) else [True, False]
    if kind in ("integer", "number"):
        numbers = _numbers_for(schema, pools, key)
        return [int(n) for n in numbers] if kind == "integer" else numbers
    if kind == "string":
        return list(pools.strings) or ["on"]
    if kind == "array":
        return [[item] for item in candidates(schema.get("items") or {}, pools)[:8]]
    if kind == "object":
        return _object_candidates(schema, pools)
    return []


def _object_candidates(schema: Mapping[str, Any], pools: Pools) -> list[Any]:
    properties = {k: v for k, v in (schema.get("properties") or {}).items() if k != "followUpToken"}
    required = [name for name in schema.get("required", []) if name in properties]
    extra = schema.get("additionalProperties")
    if not properties and isinstance(extra, Mapping):
        # A map keyed by the device's own names (modes, toggles): one entry, as Google sends them.
        values = candidates(extra, pools)
        return [{name: value} for name in pools.strings for value in values][:MAX_CANDIDATES]
    if not required:
        singles = [{name: value} for name, sub in properties.items() for value in candidates(sub, pools, name)]
        return [{}, *singles]
    choices = [[(name, value) for value in candidates(properties[name], pools, name)[:16]] for name in required]
    return [dict(combination) for combination in itertools.islice(itertools.product(*choices), MAX_CANDIDATES)]


@dataclass(frozen=True)
class Plan:
    params: dict[str, Any] | None  # None: the command is skipped
    expected: dict[str, Any] = field(default_factory=dict)  # the reported states it changes, as they become
    why: str = ""  # why skipped


def plan_command(device: Device, trait: Trait, command: str, now_ms: int, include_destructive: bool) -> Plan:
    """Params that the trait accepts for this device in its current state, preferring ones that change its
    reported state, and the states expected afterwards."""
    if command in DESTRUCTIVE and not include_destructive:
        return Plan(None, why=f"destructive ({DESTRUCTIVE[command]}): run with --all")
    if trait.query_only_attribute and device.attributes.get(trait.query_only_attribute) is True:
        return Plan(None, why=f"{trait.name} is query-only on this device")
    spec = trait.commands[command]
    before = device.query_states()
    fallback: Plan | None = None
    for params in candidates(spec.params_schema, Pools.of(device.attributes, device.state))[:MAX_CANDIDATES]:
        if not isinstance(params, dict) or schema_errors(spec.params_schema, params):
            continue
        context = CommandContext(
            device_id=device.id,
            command=command,
            params=params,
            attributes=device.attributes,
            state=device.state,
            now_ms=now_ms,
            custom_data=device.definition.get("customData") or {},
        )
        try:
            effect = trait.execute(context)
        except (CommandError, ValueError, KeyError, TypeError):
            continue
        after = device.with_state(effect.state).query_states()
        changed = {key: value for key, value in after.items() if before.get(key) != value}
        if changed:
            return Plan(params, changed)
        fallback = fallback or Plan(params)
    return fallback or Plan(None, why="no params the trait accepts for this device in its current state")


# The checks


@dataclass
class Check:
    device: str  # device id, or "SYNC", "Request Sync"
    command: str  # short command name, "(query)", "(notification)", ...
    name: str  # the check: "sync valid", "execute", "homegraph state", "query agrees", ...
    status: str = PASS
    message: str = ""
    seconds: float = 0.0
    params: Any = None


@dataclass
class Run:
    google: Google
    user: str
    timeout_s: float
    sync_timeout_s: float
    pin: str | None
    include_destructive: bool
    only: set[str]
    checks: list[Check] = field(default_factory=list)

    def record(self, check: Check) -> Check:
        self.checks.append(check)
        shown = f"{check.status:<4} {check.device} {check.command}: {check.name}"
        print(shown + (f" - {check.message}" if check.message else ""), file=sys.stderr, flush=True)
        return check


def _states_of(answer: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in NOT_STATES}


def _same(first: Any, second: Any) -> bool:
    if isinstance(first, bool) or isinstance(second, bool):
        return first is second
    if isinstance(first, int | float) and isinstance(second, int | float):
        return abs(first - second) <= 1e-6 * max(1.0, abs(first), abs(second))
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        return first.keys() == second.keys() and all(_same(first[k], second[k]) for k in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(_same(a, b) for a, b in zip(first, second, strict=True))
    return bool(first == second)


def _differences(expected: Mapping[str, Any], held: Mapping[str, Any]) -> dict[str, Any]:
    return {key: held.get(key, "(absent)") for key, value in expected.items() if not _same(value, held.get(key))}


def wait_until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def check_sync(run: Run) -> list[dict[str, Any]]:
    """SYNC answered and valid; the devices HomeGraph then knows. Returns the SYNC's device objects."""
    started = time.monotonic()
    check = Check("SYNC", "SYNC", "sync valid")
    status, answer = run.google.fulfill(google.sync_request())
    payload = answer.get("payload") if isinstance(answer, dict) else None
    problems: list[str] = []
    devices: list[dict[str, Any]] = []
    if status != 200 or not isinstance(payload, dict):
        problems.append(f"the fulfillment answered {status}: {json.dumps(answer)[:300]}")
    elif payload.get("errorCode"):
        problems.append(f"errorCode {payload['errorCode']}: {payload.get('debugString', '')}")
    else:
        if payload.get("agentUserId") != run.user:
            problems.append(f"agentUserId {payload.get('agentUserId')!r} is not {run.user!r}")
        devices = [d for d in payload.get("devices") or [] if isinstance(d, dict)]
        ids = [str(device.get("id")) for device in devices]
        problems += [f"device {i!r} is listed twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
        for device in devices:
            device_id = str(device.get("id"))
            definition = {key: value for key, value in device.items() if key != "id"}
            problems += [f"{device_id}: {problem}" for problem in definition_problems(device_id, definition)]
            if not device.get("willReportState"):
                problems.append(f"{device_id}: willReportState is not true (certification needs Report State)")
        if not devices:
            problems.append("the user has no devices: the Test Suite needs at least one")
    check.status, check.message = (FAIL, "; ".join(problems)) if problems else (PASS, f"{len(devices)} devices")
    check.seconds = time.monotonic() - started
    run.record(check)

    started = time.monotonic()
    wanted = {str(device.get("id")) for device in devices}

    def knows_them() -> bool:
        known = run.google.known_devices()
        return known is not None and wanted <= {str(d.get("id")) for d in known}

    known = wait_until(knows_them, run.timeout_s)
    run.record(
        Check(
            "SYNC",
            "SYNC",
            "homegraph knows the devices",
            PASS if known else FAIL,
            "" if known else f"HomeGraph does not list {sorted(wanted)} within {run.timeout_s:g} s (linked?)",
            time.monotonic() - started,
        )
    )
    return devices if not problems else [d for d in devices if not definition_problems(str(d.get("id")), d)]


def _query(run: Run, device_id: str) -> tuple[dict[str, Any] | None, str]:
    """The device's entry of a QUERY answer, or None and why."""
    status, answer = run.google.fulfill(google.query_request([device_id]))
    payload = answer.get("payload") if isinstance(answer, dict) else None
    entry = (payload.get("devices") or {}).get(device_id) if isinstance(payload, dict) else None
    if status != 200 or not isinstance(entry, dict):
        return None, f"QUERY answered {status}: {json.dumps(answer)[:300]}"
    if entry.get("status") not in ("SUCCESS", None):
        return None, f"QUERY answered {entry.get('status')} {entry.get('errorCode') or ''}".strip()
    return entry, ""


def check_query_agrees(run: Run, device_id: str, command: str) -> dict[str, Any] | None:
    """QUERY answers SUCCESS, and each state it answers is what HomeGraph holds; returns the states answered.
    HomeGraph is read first: Google keeps what a QUERY answers (the stand-in too), so afterwards they agree."""
    started = time.monotonic()
    held = run.google.held_states([device_id]).get(device_id, {})
    entry, problem = _query(run, device_id)
    check = Check(device_id, command, "query agrees with homegraph")
    states: dict[str, Any] | None = None
    if entry is None:
        check.status, check.message = FAIL, problem
    else:
        states = _states_of(entry)
        differ = _differences(states, held)
        if differ:
            shown = {key: states[key] for key in differ}
            check.status = FAIL
            check.message = f"QUERY answers {json.dumps(shown)}, HomeGraph holds {json.dumps(differ)}"
    check.seconds = time.monotonic() - started
    run.record(check)
    return states


def _command_result(answer: Any, device_id: str) -> dict[str, Any] | None:
    payload = answer.get("payload") if isinstance(answer, dict) else None
    for result in (payload or {}).get("commands") or []:
        if isinstance(result, dict) and device_id in (result.get("ids") or []):
            return result
    return None


def execute(run: Run, device_id: str, command: str, params: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """EXECUTE the command, answering two-factor challenges; (status, what happened, the device's result)."""
    challenge: dict[str, Any] = {}
    answered = ""
    for _ in range(3):
        request = google.command_request([device_id], command, params, **challenge)
        status, answer = run.google.fulfill(request)
        result = _command_result(answer, device_id) if status == 200 else None
        if result is None:
            return "ERROR", f"EXECUTE answered {status}: {json.dumps(answer)[:300]}", {}
        asked = (result.get("challengeNeeded") or {}).get("type")
        if result.get("status") != "ERROR" or not asked:
            code = f" {result['errorCode']}" if result.get("errorCode") else ""
            return str(result.get("status")), f"{answered}{result.get('status')}{code}", result
        if asked == "ackNeeded":
            challenge, answered = {"ack": True}, "ack, "
        elif asked == "pinNeeded" and run.pin and "pin" not in challenge:
            challenge, answered = {"pin": run.pin}, "PIN, "
        elif asked == "pinNeeded":
            return "ERROR", "the device asks for a PIN: give --pin", result
        else:
            return "ERROR", f"two-factor challenge {asked} (is --pin right?)", result
    return "ERROR", "the two-factor challenge was asked again and again", {}


def expected_states(device: Device, plan: Plan, before: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """The reported states HomeGraph should hold after the command: those a SUCCESS answer gives for what the
    command changed (the device's own account, which knows states a QUERY does not show, such as a thermostat's
    single setpoint in heatcool mode), else the trait's prediction (PENDING: the device reports them later)."""
    answered = result.get("states") if result.get("status") == "SUCCESS" else None
    if not isinstance(answered, Mapping):
        return dict(plan.expected)
    reportable = device.reportable_keys() | {"online"}
    return {
        key: value
        for key, value in answered.items()
        if key in reportable and (key in plan.expected or not _same(before.get(key), value))
    }


def check_command(run: Run, view: Mapping[str, Any], states: dict[str, Any], trait: Trait, command: str) -> Any:
    """One command on one device: EXECUTE, HomeGraph state, QUERY; returns the states QUERY answers afterwards,
    or None if the command was not run (its plan says why)."""
    device_id = str(view["id"])
    short = command.rsplit(".", 1)[-1]
    definition = {key: value for key, value in view.items() if key != "id"}
    device = Device(device_id, definition, {k: v for k, v in states.items() if k != "online"})
    plan = plan_command(device, trait, command, int(time.time() * 1000), run.include_destructive)
    if plan.params is None:
        return plan
    started = time.monotonic()
    status, said, result = execute(run, device_id, command, plan.params)
    run.record(
        Check(
            device_id,
            short,
            "execute",
            PASS if status in ("SUCCESS", "PENDING") else FAIL,
            said,
            time.monotonic() - started,
            plan.params,
        )
    )
    if status not in ("SUCCESS", "PENDING"):
        return states
    expected = expected_states(device, plan, states, result)
    started = time.monotonic()
    if expected:

        def holds() -> bool:
            return not _differences(expected, run.google.held_states([device_id]).get(device_id, {}))

        held_in_time = wait_until(holds, run.timeout_s)
        held = run.google.held_states([device_id]).get(device_id, {})
        message = (
            f"holds {json.dumps(expected)}"
            if held_in_time
            else f"HomeGraph does not hold {json.dumps(expected)} within {run.timeout_s:g} s: it holds "
            f"{json.dumps(_differences(expected, held))}"
        )
        check = Check(device_id, short, "homegraph state", PASS if held_in_time else FAIL, message, params=plan.params)
    else:
        check = Check(device_id, short, "homegraph state", SKIP, "the command changes no reported state")
    check.seconds = time.monotonic() - started
    run.record(check)
    return check_query_agrees(run, device_id, short) or states


def check_device(run: Run, view: Mapping[str, Any]) -> None:
    device_id = str(view["id"])
    states = check_query_agrees(run, device_id, "(query)")
    if states is None:
        run.record(Check(device_id, "(commands)", "execute", SKIP, "QUERY did not answer SUCCESS: no command sent"))
        return
    commands = [
        (trait, command)
        for name in view.get("traits") or []
        if (trait := trait_registry.get(str(name))) is not None
        for command in trait.commands
    ]
    # A command with no valid params now may have some once another ran (a range once the mode allows one).
    for attempt in range(2):
        later: list[tuple[Trait, str]] = []
        for trait, command in commands:
            outcome = check_command(run, view, states, trait, command)
            if isinstance(outcome, Plan):
                if attempt == 0 and "current state" in outcome.why:
                    later.append((trait, command))
                else:
                    run.record(Check(device_id, command.rsplit(".", 1)[-1], "execute", SKIP, outcome.why))
            elif isinstance(outcome, dict):
                states = outcome
        commands = later
        if not commands:
            break


def check_notifications(run: Run, view: Mapping[str, Any]) -> None:
    """A device that declares notificationSupportedByAgent: a notification from its cloud reaches HomeGraph."""
    device_id = str(view["id"])
    traits = [t for name in view.get("traits") or [] if (t := trait_registry.get(str(name))) and t.notification_schema]
    if not view.get("notificationSupportedByAgent") or not traits:
        return
    started = time.monotonic()
    check = Check(device_id, "(notification)", "notification reaches homegraph")
    if not run.google.sees_notifications:
        check.status, check.message = SKIP, "Google's HomeGraph shows no notifications: check them on a phone"
        run.record(check)
        return
    trait = traits[0]
    schema = trait.notification_schema or {}
    pools = Pools.of(view.get("attributes") or {}, {})
    notification = next(
        (c for c in candidates(schema, pools) if isinstance(c, dict) and c and not schema_errors(schema, c)), None
    )
    if notification is None:
        check.status, check.message = SKIP, f"no valid {trait.name} notification could be made"
        run.record(check)
        return
    import devicecloud

    event_id = f"certify-{uuid.uuid4().hex[:12]}"
    devicecloud.DeviceCloud().publish_state(run.user, device_id, {}, notifications=notification, event_id=event_id)
    arrived = wait_until(lambda: any(n.get("eventId") == event_id for n in run.google.notifications()), run.timeout_s)
    check.status = PASS if arrived else FAIL
    check.message = (
        f"{json.dumps(notification)}" if arrived else f"event {event_id} not announced in {run.timeout_s:g} s"
    )
    check.params = notification
    check.seconds = time.monotonic() - started
    run.record(check)


def check_request_sync(run: Run) -> None:
    """A temporary device added, renamed and removed in the Firestore registry: each time Google hears of it
    (Request Sync) and SYNCs (HomeGraph lists it, renamed, then no more)."""
    from functions.fulfillment.store import FirestoreDeviceRegistry
    from tools.cli import validated_devices

    registry = FirestoreDeviceRegistry()
    device_id = f"certify-temporary-{uuid.uuid4().hex[:8]}"
    renamed = "Certify renamed light"

    def listed() -> dict[str, dict[str, Any]]:
        return {str(d.get("id")): d for d in run.google.known_devices() or []}

    steps: list[tuple[str, Callable[[], object], Callable[[], bool]]] = [
        (
            "add",
            lambda: registry.add(run.user, validated_devices({"id": device_id, **TEMPORARY_DEVICE})),
            lambda: device_id in listed(),
        ),
        (
            "rename",
            lambda: registry.update(run.user, device_id, {"name.name": renamed}),
            lambda: bool((listed().get(device_id) or {}).get("name", {}).get("name") == renamed),
        ),
        ("remove", lambda: registry.remove(run.user, device_id), lambda: device_id not in listed()),
    ]
    try:
        for step, change, seen in steps:
            started = time.monotonic()
            mark = run.google.mark()
            change()
            synced = wait_until(seen, run.sync_timeout_s)
            asked = run.google.request_syncs_since(mark) if run.google.sees_calls else None
            check = Check("Request Sync", step, "homegraph follows", PASS if synced else FAIL)
            if not synced:
                check.message = f"HomeGraph did not follow the {step} within {run.sync_timeout_s:g} s" + (
                    f" ({asked} requestSync calls)" if asked is not None else ""
                )
            elif asked == 0:
                check.status, check.message = FAIL, "HomeGraph follows, but no requestSync was made"
            else:
                check.message = f"{device_id}" + (f" after {asked} requestSync call(s)" if asked else "")
            check.seconds = time.monotonic() - started
            run.record(check)
            if not synced:
                break
    finally:
        registry.remove(run.user, device_id)


def certify(run: Run) -> None:
    devices = check_sync(run)
    for view in devices:
        if run.only and str(view.get("id")) not in run.only:
            continue
        check_device(run, view)
        check_notifications(run, view)
    check_request_sync(run)


# Output


def table(checks: Sequence[Check]) -> str:
    """A row per device and command: the outcome of each check, then what failed or was skipped."""
    columns = ("execute", "homegraph state", "query agrees with homegraph")
    rows: dict[tuple[str, str], dict[str, Check]] = {}
    for check in checks:
        rows.setdefault((check.device, check.command), {})[check.name] = check
    lines: list[tuple[str, ...]] = [("device", "command", "params", "execute", "homegraph", "query", "other")]
    for (device, command), found in rows.items():
        params = next((c.params for c in found.values() if c.params is not None), None)
        others = [f"{c.name} {c.status}" for name, c in found.items() if name not in columns]
        lines.append(
            (
                device,
                command,
                json.dumps(params)[:40] if params is not None else "",
                *(found[name].status if name in found else "" for name in columns),
                ", ".join(others),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    shown = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    failed = [c for c in checks if c.status == FAIL]
    skipped = [c for c in checks if c.status == SKIP]
    shown.append("")
    shown += [f"FAIL {c.device} {c.command}: {c.name}: {c.message}" for c in failed]
    shown += [f"skipped {c.device} {c.command}: {c.message}" for c in skipped]
    passed = len(checks) - len(failed) - len(skipped)
    shown.append(f"{len(checks)} checks: {passed} passed, {len(failed)} failed, {len(skipped)} skipped")
    return "\n".join(shown)


def junit(checks: Sequence[Check], suite: str = "google certify") -> bytes:
    """The checks as JUnit XML: a test case per device, command and check."""
    failures = sum(c.status == FAIL for c in checks)
    skipped = sum(c.status == SKIP for c in checks)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(checks)),
        failures=str(failures),
        skipped=str(skipped),
        time=f"{sum(c.seconds for c in checks):.3f}",
    )
    for check in checks:
        case = ET.SubElement(
            root,
            "testcase",
            classname=f"certify.{check.device}",
            name=f"{check.command}: {check.name}",
            time=f"{check.seconds:.3f}",
        )
        if check.status == FAIL:
            ET.SubElement(case, "failure", message=check.message[:500]).text = check.message
        elif check.status == SKIP:
            ET.SubElement(case, "skipped", message=check.message[:500])
        elif check.message:
            ET.SubElement(case, "system-out").text = check.message
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


# The command


def _google_for(args: argparse.Namespace) -> Google:
    if args.url or args.token:
        if not (args.url and args.token and args.project):
            raise Refused("a deployed fulfillment needs --url, --token and --project together")
        os.environ["GOOGLE_CLOUD_PROJECT"] = args.project  # the Firestore of the temporary device
        local_stack.point_at_stack()
        return DeployedGoogle(args.url, args.token, args.user)
    local_stack.point_at_stack()
    url = args.homegraph or (local_stack.running() or {}).get("urls", {}).get("homegraph stand-in")
    if not url:
        raise Refused("no local stack runs (start it with `make up`); or give --url, --token and --project")
    return StandInGoogle(str(url), args.user)


def run_certify(args: argparse.Namespace) -> int:
    try:
        google_side = _google_for(args)
        if not local_stack.user_is_known(args.user):
            raise Refused(local_stack.unknown_user_message(args.user).replace("; --create if it is a new user", ""))
    except (Refused, local_stack.StackProblem) as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    run = Run(
        google_side, args.user, args.timeout, args.sync_timeout, args.pin, args.all, set(args.device or ()), checks=[]
    )
    print(f"certify {args.user} against {google_side.where}", file=sys.stderr)
    try:
        certify(run)
    except Refused as refused:
        run.record(Check("certify", "-", "ran to the end", FAIL, str(refused)))
    print(table(run.checks))
    if args.junit:
        Path(args.junit).write_bytes(junit(run.checks))
    return 1 if any(check.status == FAIL for check in run.checks) else 0


def _google_group(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> Any:
    """The sub-commands of `google` (tools/google_cli.py builds the group)."""
    acting = groups.choices["google"]
    return next(action for action in acting._actions if isinstance(action, argparse._SubParsersAction))


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _google_group(groups).add_parser(
        "certify",
        help="a dry run of Google's Test Suite: SYNC, QUERY and EXECUTE of every command, HomeGraph, Request Sync",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--user", required=True, help="agentUserId of the test account")
    parser.add_argument("--url", help="a deployed fulfillment's URL (with --token and --project)")
    parser.add_argument("--token", help="an access token of the test account for --url")
    parser.add_argument("--project", help="the deployed project: its Firestore and HomeGraph")
    parser.add_argument("--homegraph", help="the HomeGraph stand-in's URL (default: the local stack's)")
    parser.add_argument("--pin", help="the PIN two-factor challenges ask for")
    parser.add_argument("--all", action="store_true", help="run destructive commands too (Reboot, SoftwareUpdate, ...)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds for HomeGraph (default 10)")
    parser.add_argument(
        "--sync-timeout", type=float, default=DEFAULT_SYNC_TIMEOUT_S, help="seconds for each Request Sync (default 60)"
    )
    parser.add_argument("--device", action="append", help="only this device (repeat); SYNC and Request Sync still run")
    parser.add_argument("--junit", help="write the checks as JUnit XML to this file")
    # It finds the stack (or --project) itself and checks the user itself (tools/cli.py's checks are for commands
    # acting on the environment's Firestore).
    parser.set_defaults(run=run_certify, uses_project=False)
