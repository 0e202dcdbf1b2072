"""Fuzzing the fulfillment: generated and mutated requests through the real handler on the Firestore emulator.

Every answer is a schema-valid response or a clean JSON 4xx, never a 5xx; no stored document changes unless a
valid command was applied (an EXECUTE answered SUCCESS for that device).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.fulfillment.requests import intent_of
from tests.integration.conftest import Google
from tests.schema_oracle import oracle
from tools.google import disconnect_request, execute_request, query_request, sync_request

pytestmark = pytest.mark.emulator

# Four tests share the budget; together they send at least 10,000 requests.
EXAMPLES_PER_TEST = int(__import__("os").environ.get("FUZZ_EXAMPLES", "2600"))
SENT = {"count": 0}

DEVICES: list[dict[str, Any]] = [
    {
        "id": "lamp",
        "type": "action.devices.types.LIGHT",
        "traits": [
            "action.devices.traits.OnOff",
            "action.devices.traits.Brightness",
            "action.devices.traits.ColorSetting",
        ],
        "name": {"name": "Lamp"},
        "willReportState": True,
        "attributes": {
            "colorModel": "rgb",
            "colorTemperatureRange": {"temperatureMinK": 2000, "temperatureMaxK": 9000},
        },
        "state": {"on": False, "brightness": 30},
    },
    {
        "id": "fan",
        "type": "action.devices.types.FAN",
        "traits": ["action.devices.traits.OnOff", "action.devices.traits.FanSpeed"],
        "name": {"name": "Fan"},
        "willReportState": True,
        "attributes": {"supportsFanSpeedPercent": True},
        "state": {"on": False, "currentFanSpeedPercent": 10},
    },
    {
        "id": "blind",
        "type": "action.devices.types.BLINDS",
        "traits": ["action.devices.traits.OpenClose"],
        "name": {"name": "Blind"},
        "willReportState": True,
        "state": {"openPercent": 0},
    },
    {
        "id": "thermostat",
        "type": "action.devices.types.THERMOSTAT",
        "traits": ["action.devices.traits.TemperatureSetting"],
        "name": {"name": "Thermostat"},
        "willReportState": True,
        "attributes": {
            "availableThermostatModes": ["off", "heat", "cool", "heatcool"],
            "thermostatTemperatureUnit": "C",
        },
    },
]
IDS = [d["id"] for d in DEVICES] + ["ghost", "", "../lamp", "lamp/../../x", "💡", "a" * 1500]
COMMANDS = [
    ("OnOff", {"on": True}),
    ("BrightnessAbsolute", {"brightness": 50}),
    ("BrightnessRelative", {"brightnessRelativePercent": 10}),
    ("ColorAbsolute", {"color": {"spectrumRGB": 16711680}}),
    ("SetFanSpeed", {"fanSpeedPercent": 40}),
    ("OpenClose", {"openPercent": 100}),
    ("ThermostatTemperatureSetpoint", {"thermostatTemperatureSetpoint": 21}),
    ("ThermostatSetMode", {"thermostatMode": "heat"}),
    ("Frobnicate", {}),
]

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 1e308, -1e-308, -0.0, 0.5]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "\u0000", "\ud7ff\ue000", "🏠" * 50, "a" * 5000, "action.devices.SYNC"]),
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["sync", "query", "execute", "execute", "execute", "disconnect"]))
    if kind == "sync":
        return sync_request()
    if kind == "disconnect":
        return disconnect_request()
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=6))
    if kind == "query":
        return query_request(ids)
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        group_ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=4))
        executions = []
        for _ in range(draw(st.integers(1, 3))):
            name, params = draw(st.sampled_from(COMMANDS))
            executions.append({"command": f"action.devices.commands.{name}", "params": dict(params)})
        groups.append((group_ids, executions))
    return execute_request(groups)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a mutation can go: every node down to a depth where requests have nothing left to bend."""
    found = [prefix]
    if len(prefix) >= 12:
        return found
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = replace(copy[head], rest, new)
    return copy


def delete(value: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != path[0]}
        return [v for i, v in enumerate(value) if i != path[0]]
    head = path[0]
    child = delete(value[head], path[1:])
    if isinstance(value, dict):
        return {**value, head: child}
    copy = list(value)
    copy[head] = child
    return copy


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """A valid request bent in one to three ways, serialized (sometimes truncated)."""
    request: Any = draw(valid_requests())
    for _ in range(draw(st.integers(1, 3))):
        mutation = draw(st.sampled_from(["retype", "delete", "extra", "huge", "deep", "ids", "command"]))
        targets = paths(request)
        target = draw(st.sampled_from(targets))
        if mutation == "retype":
            request = replace(request, target, draw(json_value))
        elif mutation == "delete" and target:
            request = delete(request, target)
        elif mutation == "extra":
            node = request
            for part in target:
                node = node[part]
            if isinstance(node, dict):
                request = replace(request, target, {**node, draw(st.text(max_size=8)): draw(json_value)})
        elif mutation == "huge":
            request = replace(request, target, [draw(json_leaf)] * draw(st.sampled_from([600, 5000, 20000])))
        elif mutation == "deep":
            nested: Any = draw(json_leaf)
            for _ in range(draw(st.sampled_from([50, 500, 5000]))):
                nested = [nested]
            request = replace(request, target, nested)
            break  # nothing walks into a 5,000-deep value after this
        elif mutation == "ids":
            request = replace(request, target, {"id": draw(st.text(max_size=40))})
        else:
            request = replace(request, target, {"command": draw(st.text(max_size=60)), "params": draw(json_value)})
    try:
        raw = json.dumps(request, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        raw = b"[" * 10000
    if draw(st.integers(0, 9)) == 0:
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return raw


@pytest.fixture(scope="module")
def world(fulfillment_app: Any, firestore_emulator: Any) -> dict[str, Any]:
    """Alice's devices, registered once for the module (emptied first)."""
    from functions.fulfillment.store import FirestoreDeviceRegistry
    from functions.platform.firestore import client
    from tests.conftest import PROJECT
    from tools import emulators
    from tools.cli import validated_devices

    emulators.clear_firestore(firestore_emulator.address, PROJECT)
    FirestoreDeviceRegistry().add("alice", validated_devices(DEVICES))
    return {"app": fulfillment_app, "db": client()}


def snapshot(db: Any) -> dict[str, Any]:
    return {s.id: s.to_dict() for s in db.collection("users").document("alice").collection("devices").stream()}


def fresh_token() -> str:
    import time

    from functions.core import tokens
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.platform.firestore import FirestoreTokenStore

    now = int(time.time() * 1000)
    token = tokens.issue(FirestoreTokenStore(), tokens.ACCESS, "alice", 3600, now)
    FirestoreFulfillmentStore().mark_linked("alice", now)
    return token


class Fuzzer:
    def __init__(self, world: dict[str, Any]) -> None:
        self.google = Google(world["app"], fresh_token())
        self.db = world["db"]
        self.before = snapshot(self.db)

    def send(self, raw: bytes) -> None:
        SENT["count"] += 1
        response = self.google.client.post(
            "/", data=raw, headers={"Authorization": f"Bearer {self.google.token}"}, content_type="application/json"
        )
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        assert response.content_type.startswith("application/json")
        body = response.get_json()
        assert response.status_code in (200, 400, 413), (response.status_code, body)
        if response.status_code != 200:
            assert body["error"] in {"invalid_request", "request_too_large"}
            self.assert_unchanged(set())
            return
        request = json.loads(raw)
        if body == {}:  # DISCONNECT: the token is gone; link again for the next request
            self.google.token = fresh_token()
            self.assert_unchanged(set())
            return
        named = intent_of(request)
        intent = named.rsplit(".", 1)[-1].lower() if named else "execute"
        oracle().assert_response(intent, body)
        if body["payload"].get("errorCode") == "protocolError":
            self.assert_unchanged(set())
            return
        applied = set()
        if intent == "execute":
            applied = {i for group in body["payload"]["commands"] if group["status"] == "SUCCESS" for i in group["ids"]}
        self.assert_unchanged(applied)

    def assert_unchanged(self, applied: set[str]) -> None:
        after = snapshot(self.db)
        for device_id, document in self.before.items():
            if device_id not in applied:
                assert after[device_id] == document, f"{device_id} changed without a successful command"
        self.before = after


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_TEST,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@FUZZ_SETTINGS
@given(raw=mutated_requests())
def test_mutated_requests_never_get_a_5xx_nor_change_state(world: dict[str, Any], raw: bytes) -> None:
    Fuzzer(world).send(raw)


@FUZZ_SETTINGS
@given(request=valid_requests())
def test_valid_requests_get_schema_valid_answers(world: dict[str, Any], request: dict[str, Any]) -> None:
    Fuzzer(world).send(json.dumps(request).encode())


@FUZZ_SETTINGS
@given(value=json_value)
def test_arbitrary_json_bodies_are_refused_cleanly(world: dict[str, Any], value: Any) -> None:
    Fuzzer(world).send(json.dumps(value).encode())


@FUZZ_SETTINGS
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_cleanly(world: dict[str, Any], raw: bytes) -> None:
    fuzzer = Fuzzer(world)
    SENT["count"] += 1
    response = fuzzer.google.client.post(
        "/", data=raw, headers={"Authorization": f"Bearer {fuzzer.google.token}"}, content_type="application/json"
    )
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    fuzzer.assert_unchanged(set())


def test_at_least_ten_thousand_requests_were_sent() -> None:
    # FUZZ_EXAMPLES may lower the budget for a quick local run; the default sends at least 10,000.
    assert SENT["count"] >= min(10_000, 4 * EXAMPLES_PER_TEST), SENT
