"""The state message contract, report planning, device backends and the report after SYNC (pure parts)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from jsonschema import Draft7Validator

from functions.core.commands import Execution, backend_of, virtual_result
from functions.core.device import parse_device
from functions.core.state_messages import (
    CONTRACT,
    InvalidMessage,
    ReportAllRequest,
    StateMessage,
    parse,
    report_all_data,
    state_message_data,
)
from functions.core.times import format_time_ms, parse_time_ms
from functions.core.traits.base import Effect
from functions.fulfillment.backends import DeviceBackends
from functions.fulfillment.initial_report import InitialReportAfterSync
from functions.reporting import planning
from functions.reporting.planning import FOLLOW_UP, NOTIFICATION, DeviceView, Event, QueueEntry
from tests.fakes.memory import MemoryStore
from tests.fakes.memory_reporting import MemoryReportStore
from tests.unit.reporting_helpers import BASE_MS, document, lamp, lock, message_json, router, washer

NOW = BASE_MS + 60_000


def raw(body: Any) -> bytes:
    return json.dumps(body).encode()


# The contract


def test_the_contract_is_a_valid_json_schema_whose_examples_parse() -> None:
    schema = json.loads(CONTRACT.read_text())
    Draft7Validator.check_schema(schema)
    assert schema["examples"]
    for example in schema["examples"]:
        assert list(Draft7Validator(schema).iter_errors(example)) == []
        parsed = parse(raw(example), None, parse_time_ms(example["observedAt"]) + 1000)
        assert isinstance(parsed, StateMessage)


def test_a_state_message_parses_into_its_fields() -> None:
    body = message_json("lamp-1", {"on": True}, online=False)
    parsed = parse(raw(body), {}, NOW)
    assert parsed == StateMessage("alice", "lamp-1", {"on": True}, BASE_MS, online=False)
    assert parse_time_ms("2026-11-21T10:00:00.123+01:00") == parse_time_ms("2026-11-21T09:00:00.123Z")
    assert format_time_ms(1_795_255_200_123) == "2026-11-21T10:00:00.123Z"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"NaN", "not JSON"),
        (raw([1, 2]), "JSON object"),
        (raw({"agentUserId": "alice", "deviceId": "d", "states": {}}), "observedAt"),
        (raw(message_json("d", {}, colour="red")), "colour"),
        (raw({**message_json("d", {}), "states": ["on"]}), "states"),
        (raw(message_json("d", {}, eventId="e")), "notifications"),
        (raw(message_json("d", {}, notifications={"ObjectDetection": {}})), "eventId"),
        (raw(message_json("d", {}, errorCode="deviceJammingDetected")), "commandId"),
        (raw(message_json("d", {}, commandId="has spaces")), "commandId"),
        (raw(message_json("a/b", {})), "deviceId"),
        (raw({**message_json("d", {}), "observedAt": "yesterday"}), "observedAt"),
        (raw({**message_json("d", {}), "observedAt": "2026-11-21T10:00:00"}), "observedAt"),
        (raw(message_json("d", {}, NOW + 6 * 60_000)), "future"),
        (raw(message_json("d", {"x": "y" * 300_000})), "larger than"),
    ],
)
def test_invalid_state_messages_say_what_is_wrong(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        parse(data, None, NOW)


def test_report_all_requests_are_marked_by_their_attribute() -> None:
    data, attributes = report_all_data("alice", BASE_MS)
    assert parse(data, attributes, NOW) == ReportAllRequest("alice", BASE_MS)
    with pytest.raises(InvalidMessage, match="report-all"):
        parse(raw({"agentUserId": "alice"}), attributes, NOW)
    with pytest.raises(InvalidMessage):  # without the attribute it is not a state message either
        parse(data, None, NOW)


def test_state_message_data_round_trips() -> None:
    original = StateMessage("alice", "lock", {"isLocked": True}, BASE_MS, command_id="c1", error_code="lockFailure")
    assert parse(state_message_data(original), None, NOW) == original


# Planning


def device(definition: Mapping[str, Any]) -> Any:
    return parse_device(definition["id"], document(definition))


def counter() -> Any:
    numbers = iter(range(1000))
    return lambda: f"r{next(numbers)}"


def test_changed_states_are_whole_traits_and_only_those() -> None:
    light = device(lamp("l", state={"on": True, "brightness": 40}))
    assert planning.changed_states(light, {}) == {"on": True, "brightness": 40, "online": True}
    assert planning.changed_states(light, {"on": True, "brightness": 30, "online": True}) == {"brightness": 40}
    assert planning.changed_states(light, {"on": True, "brightness": 40, "online": True}) == {}
    assert planning.changed_states(light, {"on": True, "brightness": 40, "online": True}, full=True) == {
        "on": True,
        "brightness": 40,
        "online": True,
    }


def test_reported_state_is_replaced_trait_by_trait() -> None:
    light = device(lamp("l"))
    before = {"on": False, "brightness": 10, "online": True}
    assert planning.reported_after(light, before, {"brightness": 50}) == {"on": False, "brightness": 50, "online": True}
    door = device(lock("d", state={"isJammed": True}))
    # A lock that became jammed reports isJammed without isLocked: the old isLocked is gone with its trait.
    assert planning.reported_after(door, {"isLocked": True, "isJammed": False}, {"isJammed": True}) == {
        "isJammed": True
    }


def test_private_and_command_only_states_are_never_planned() -> None:
    box = device(router("r"))
    assert "guestNetworkPassword" not in planning.changed_states(box, {}, full=True)
    command_only = device(lamp("c", attributes={"commandOnlyOnOff": True}, state={"brightness": 5}))
    assert planning.changed_states(command_only, {}, full=True) == {"brightness": 5, "online": True}


def test_a_plan_puts_all_states_in_one_call_and_each_announcement_in_its_own() -> None:
    views = {d: DeviceView(device(lamp(d, state={"on": True, "brightness": 10}))) for d in ("a", "b", "c")}
    note = {
        "LockUnlock": {"priority": 0, "followUpResponse": {"status": "SUCCESS", "isLocked": True, "followUpToken": "t"}}
    }
    views["door"] = DeviceView(
        device(lock("door", state={"isLocked": True, "isJammed": False})),
        {"isLocked": True, "isJammed": False, "online": True},
    )
    entries = [
        QueueEntry("e1", "a", 1),
        QueueEntry("e2", "b", 2),
        QueueEntry("e3", "door", 3, events=(Event("f1", "door", FOLLOW_UP, note, 3, expires_ms=NOW + 1),)),
        QueueEntry("e4", "c", 4),
    ]
    calls, dropped = planning.plan(entries, views, NOW, counter())
    assert dropped == []
    [call] = calls
    body = call.body("alice")
    assert body["eventId"] == "f1"
    assert set(body["payload"]["devices"]["states"]) == {"a", "b", "c", "door"}
    # The follow-up carries the device's state although it did not change since the last report.
    assert body["payload"]["devices"]["states"]["door"] == {"isLocked": True, "isJammed": False, "online": True}
    assert body["payload"]["devices"]["notifications"] == {"door": note}


def test_expired_and_undeliverable_announcements_are_dropped_with_a_reason() -> None:
    views = {"door": DeviceView(device(lock("door"))), "gone": DeviceView(None)}
    note = {
        "LockUnlock": {"priority": 0, "followUpResponse": {"status": "SUCCESS", "isLocked": True, "followUpToken": "t"}}
    }
    entries = [
        QueueEntry("e1", "door", 1, events=(Event("late", "door", FOLLOW_UP, note, 1, expires_ms=NOW),)),
        QueueEntry("e2", "door", 2, events=(Event("n", "door", NOTIFICATION, {"X": {}}, 2),)),
        QueueEntry("e3", "gone", 3, events=(Event("g", "gone", NOTIFICATION, {"X": {}}, 3),)),
    ]
    calls, dropped = planning.plan(entries, views, NOW, counter())
    assert [
        (event.event_id, "expired" in reason or "notificationSupportedByAgent" in reason or "gone" in reason)
        for event, reason in dropped
    ] == [
        ("late", True),
        ("n", True),
        ("g", True),
    ]
    assert [set(call.states) for call in calls] == [{"door"}]


def test_large_reports_are_split_into_calls_of_bounded_size() -> None:
    views = {f"d{i}": DeviceView(device(lamp(f"d{i}"))) for i in range(planning.MAX_DEVICES_PER_CALL + 5)}
    calls, _ = planning.plan([QueueEntry("all", None, 1, full=True)], views, NOW, counter())
    assert [len(call.states) for call in calls] == [planning.MAX_DEVICES_PER_CALL, 5]
    parts = planning.split(calls[1], counter())
    assert [list(part.states) for part in parts] == [[d] for d in calls[1].states]


# What a state change announces (the traits' hooks, asked of every trait of the device)


def test_a_run_that_ends_announces_its_completion_and_nothing_else_does() -> None:
    machine = device(washer("w"))
    done = {**machine.state, "currentTotalRemainingTime": 0, "currentCycleRemainingTime": 0}
    finished = {"RunCycle": {"priority": 0, "status": "SUCCESS", "currentCycleRemainingTime": 0}}
    assert planning.completion_notifications(machine, machine.state, done) == finished
    assert planning.completion_notifications(machine, done, done) == {}
    # A message that brings its own notification for the trait is not announced twice.
    assert planning.completion_notifications(machine, machine.state, done, announced={"RunCycle": {}}) == {}
    # No trait of a lamp announces anything by itself.
    light = device(lamp("l"))
    assert planning.completion_notifications(light, light.state, {"on": True, "brightness": 0}) == {}


def test_a_follow_up_is_built_by_the_commands_trait_and_only_if_it_sends_follow_ups() -> None:
    locked = {"isLocked": True, "isJammed": False}
    lock_command = "action.devices.commands.LockUnlock"
    success = planning.follow_up_notifications(lock_command, "t", {"lock": True}, locked, None)
    assert json.dumps(success) == (
        '{"LockUnlock": {"priority": 0, "followUpResponse": {"status": "SUCCESS", "isLocked": true, '
        '"followUpToken": "t"}}}'
    )
    failure = planning.follow_up_notifications(lock_command, "t", {"lock": True}, locked, "deviceOffline")
    assert json.dumps(failure) == (
        '{"LockUnlock": {"priority": 0, "followUpResponse": {"status": "FAILURE", "errorCode": "deviceOffline", '
        '"followUpToken": "t"}}}'
    )
    speed_test = "action.devices.commands.TestNetworkSpeed"
    nothing_measured = planning.follow_up_notifications(speed_test, "t", {"testDownloadSpeed": True}, {}, None)
    assert nothing_measured == {
        "NetworkControl": {
            "priority": 0,
            "followUpResponse": {"status": "FAILURE", "errorCode": "transientError", "followUpToken": "t"},
        }
    }
    # Commands of traits without follow-ups, and unknown commands, have none, whatever the device reported.
    for command in ("action.devices.commands.OnOff", "action.devices.commands.NoSuchThing"):
        assert planning.follow_up_notifications(command, "t", {"on": True}, {"on": True}, None) is None
        assert planning.follow_up_notifications(command, "t", {"on": True}, {"on": True}, "deviceOffline") is None


# Device backends (the fulfillment's FollowUps port)


class Published:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[tuple[str, bytes, Mapping[str, str] | None]] = []
        self.fail = fail

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        if self.fail:
            raise RuntimeError("no Pub/Sub today")
        self.messages.append((topic, data, attributes))
        return str(len(self.messages))


def backends(store: MemoryReportStore, published: Published, delay_ms: int = 0) -> DeviceBackends:
    return DeviceBackends(
        store,
        lambda: published,
        state_topic=lambda: "device-state",
        commands_topic=lambda: "device-commands",
        virtual_delay_ms=lambda: delay_ms,
        new_command_id=lambda: "cmd-1",
    )


def test_a_virtual_device_completes_by_publishing_its_result_on_the_state_topic() -> None:
    store, published = MemoryReportStore(), Published()
    store.put_device("alice", "front-door", document(lock()))
    execution = Execution("action.devices.commands.LockUnlock", {"lock": True}, follow_up_token="google-token")
    effect = Effect(state={"isLocked": True, "isJammed": False}, pending=True)
    backends(store, published, delay_ms=1500).pending("alice", device(lock()), execution, effect, NOW)
    saved = store.pending[("alice", "cmd-1")]
    assert saved["followUpToken"] == "google-token"
    assert saved["expiresAtMs"] == NOW + 5 * 60_000
    assert saved["backend"] == "virtual"
    assert saved["dueAt"] == NOW + 1500
    [(topic, data, _)] = published.messages
    assert topic == "device-state"
    result = parse(data, None, NOW + 1500)
    assert result == StateMessage(
        "alice", "front-door", {"isLocked": True, "isJammed": False}, NOW + 1500, command_id="cmd-1"
    )


def test_a_backend_that_cannot_be_reached_does_not_fail_the_execute() -> None:
    store = MemoryReportStore()
    store.put_device("alice", "front-door", document(lock()))
    execution = Execution("action.devices.commands.LockUnlock", {"lock": True}, follow_up_token="t")
    backends(store, Published(fail=True)).pending("alice", device(lock()), execution, Effect(pending=True), NOW)
    assert ("alice", "cmd-1") in store.pending


def test_backend_names_and_virtual_speed_tests() -> None:
    assert backend_of(None) == backend_of({}) == backend_of({"backend": "virtual"}) == "virtual"
    assert backend_of({"backend": "pubsub"}) == "pubsub"
    assert backend_of({"backend": "carrier-pigeon"}) == "virtual"
    states = virtual_result(
        "action.devices.commands.TestNetworkSpeed", {"testDownloadSpeed": True, "testUploadSpeed": False}, Effect(), NOW
    )
    assert states["networkSpeedTestInProgress"] is False
    assert states["lastNetworkDownloadSpeedTest"]["status"] == "SUCCESS"
    assert "lastNetworkUploadSpeedTest" not in states


# The report after SYNC


def test_a_sync_asks_for_the_full_report_and_never_fails_for_it() -> None:
    published = Published()
    store = InitialReportAfterSync(MemoryStore(), lambda: published, lambda: "device-state")
    store.mark_linked("alice", BASE_MS)
    [(topic, data, attributes)] = published.messages
    assert topic == "device-state"
    assert parse(data, attributes, NOW) == ReportAllRequest("alice", BASE_MS)
    failing = InitialReportAfterSync(MemoryStore(), lambda: Published(fail=True), lambda: "device-state")
    failing.mark_linked("alice", BASE_MS)  # logged, not raised


def test_without_pubsub_a_pending_command_stays_pending_quietly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from functions.platform.pubsub import PublishingDisabled, PubSubPublisher

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    publisher = PubSubPublisher(project="demo")
    with pytest.raises(PublishingDisabled):  # never looks for production credentials
        publisher.publish("device-state", b"{}")
    store = MemoryReportStore()
    store.put_device("alice", "front-door", document(lock()))
    execution = Execution("action.devices.commands.LockUnlock", {"lock": True}, follow_up_token="t")
    quiet = DeviceBackends(
        store,
        lambda: publisher,
        state_topic=lambda: "device-state",
        commands_topic=lambda: "device-commands",
        virtual_delay_ms=lambda: 0,
        new_command_id=lambda: "cmd-1",
    )
    quiet.pending("alice", device(lock()), execution, Effect(pending=True), NOW)
    assert ("alice", "cmd-1") in store.pending
    assert [r.levelname for r in caplog.records if "stays pending" in r.getMessage()] == ["WARNING"]
