"""The Report State pipeline (functions.reporting.pipeline) on the in-memory store with a recording HomeGraph.

The same pipeline runs end to end on the emulators in tests/integration/test_report_state.py; here the cases are
many and fast: dedup, order, coalescing across instances (threads with separate reporters), every error path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from functions.core.commands import FOLLOW_UP_TTL_MS, PendingCommand
from functions.core.homegraph import BadRequest, Forbidden, NotFound, Transient
from functions.core.state_messages import InvalidMessage, ReportAllRequest
from functions.reporting.model import (
    IGNORED,
    NOT_LINKED,
    REPORT_SEQ,
    REPORTED,
    STALE,
    SUPERSEDED,
    TOO_OLD,
    UNCHANGED,
    ReportDeferred,
    Settings,
)
from functions.reporting.pipeline import Reporter
from tests.fakes.memory_reporting import MemoryReportStore
from tests.unit.reporting_helpers import (
    BASE_MS,
    RecordingHomeGraph,
    document,
    doorbell,
    lamp,
    lock,
    message,
    router,
    smoke_detector,
    washer,
)

FAST = Settings(
    window_ms=30,
    wait_budget_s=5,
    poll_ms=10,
    lease_ms=2_000,
    retry_after_s=0.05,
    initial_report_delay_s=0,
    resend_after_s=0.05,
)
# Wide enough that threads started together queue inside one window even on a loaded machine (< FAST.lease_ms).
COALESCING_WINDOW_MS = 1000


class Clock:
    """Wall clock in ms that tests can move forward (the pipeline's sleeps still take real time)."""

    def __init__(self) -> None:
        import time

        self._time = time
        self.offset_ms = 0

    def __call__(self) -> int:
        return int(self._time.time() * 1000) + self.offset_ms


@pytest.fixture
def store() -> MemoryReportStore:
    store = MemoryReportStore()
    store.put_user("alice", linked=True, linked_at_ms=BASE_MS - 3_600_000)
    for device in (lamp("lamp-1"), lamp("lamp-2"), lamp("lamp-3"), lock(), washer(), doorbell(), smoke_detector()):
        store.put_device("alice", device["id"], document(device))
    store.put_device("alice", "router", document(router()))
    return store


@pytest.fixture
def homegraph() -> RecordingHomeGraph:
    return RecordingHomeGraph()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_reporter(store: MemoryReportStore, homegraph: RecordingHomeGraph, clock: Clock) -> Callable[..., Reporter]:
    def make(settings: Settings = FAST) -> Reporter:
        return Reporter(store, lambda: homegraph, settings, clock_ms=clock)

    return make


@pytest.fixture
def reporter(make_reporter: Callable[..., Reporter]) -> Reporter:
    return make_reporter()


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


def states_sent(homegraph: RecordingHomeGraph) -> list[dict[str, Any]]:
    return [body["payload"]["devices"].get("states", {}) for body in homegraph.bodies]


# State reporting


def test_a_state_message_updates_firestore_then_reports_the_whole_changed_trait(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    outcome = reporter.handle(message("lamp-1", {"brightness": 40}), "m1", now_ms())
    assert outcome == REPORTED
    assert store.devices[("alice", "lamp-1")]["state"] == {"on": False, "brightness": 40}
    [body] = homegraph.bodies
    assert body["agentUserId"] == "alice"
    assert body["requestId"]
    assert "eventId" not in body
    # Nothing was reported for the device before: every trait (and online) is new to HomeGraph.
    assert body["payload"]["devices"] == {"states": {"lamp-1": {"on": False, "brightness": 40, "online": True}}}
    assert store.entries == {}
    assert store.reported[("alice", "lamp-1")]["states"] == {"on": False, "brightness": 40, "online": True}
    # From then on only the trait that changed goes, whole (OnOff: `on`; Brightness stays as it was).
    reporter.handle(message("lamp-1", {"on": True}, BASE_MS + 1), "m2", now_ms())
    assert homegraph.bodies[1]["payload"]["devices"] == {"states": {"lamp-1": {"on": True}}}


def test_unchanged_state_is_not_reported_again(reporter: Reporter, homegraph: RecordingHomeGraph) -> None:
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert reporter.handle(message("lamp-1", {"on": True}, BASE_MS + 1000), "m2", now_ms()) == UNCHANGED
    assert (
        reporter.handle(message("lamp-1", {"on": True, "brightness": 10}, BASE_MS + 2000), "m3", now_ms()) == UNCHANGED
    )
    assert len(homegraph.bodies) == 1


def test_a_redelivered_message_reports_nothing_twice(reporter: Reporter, homegraph: RecordingHomeGraph) -> None:
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert len(homegraph.bodies) == 1


def test_a_message_older_than_the_last_applied_is_not_applied(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    reporter.handle(message("lamp-1", {"brightness": 70}, BASE_MS + 5000), "newer", now_ms())
    assert reporter.handle(message("lamp-1", {"brightness": 20}, BASE_MS + 1000), "older", now_ms()) == STALE
    assert store.devices[("alice", "lamp-1")]["state"]["brightness"] == 70
    assert homegraph.states()["lamp-1"]["brightness"] == 70
    assert len(homegraph.bodies) == 1


def test_unchanged_newer_messages_still_move_the_order_forward(reporter: Reporter, store: MemoryReportStore) -> None:
    reporter.handle(message("lamp-1", {"on": True}, BASE_MS + 1000), "a", now_ms())
    reporter.handle(message("lamp-1", {"on": True}, BASE_MS + 9000), "b", now_ms())  # a repeat, newer
    assert reporter.handle(message("lamp-1", {"on": False}, BASE_MS + 5000), "c", now_ms()) == STALE
    assert store.devices[("alice", "lamp-1")]["state"]["on"] is True


def test_only_keys_of_the_device_traits_are_stored_and_reported(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    reporter.handle(
        message("lamp-1", {"on": True, "color": {"spectrumRgb": 255}, "thermostatMode": "heat"}), "m", now_ms()
    )
    assert store.devices[("alice", "lamp-1")]["state"] == {"on": True, "brightness": 10}
    assert homegraph.states()["lamp-1"] == {"on": True, "brightness": 10, "online": True}


def test_private_state_is_never_reported(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    reporter.handle(message("router", {"guestNetworkPassword": "new-secret", "numConnectedDevices": 4}), "m", now_ms())
    assert store.devices[("alice", "router")]["state"]["guestNetworkPassword"] == "new-secret"
    [sent] = states_sent(homegraph)
    assert "guestNetworkPassword" not in sent["router"]
    assert sent["router"]["numConnectedDevices"] == 4
    assert "new-secret" not in repr(homegraph.bodies)
    assert "hunter2" not in repr(homegraph.bodies)


def test_online_changes_are_stored_and_reported(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    reporter.handle(message("lamp-1", {}, online=False), "m1", now_ms())
    assert store.devices[("alice", "lamp-1")]["online"] is False
    assert homegraph.states()["lamp-1"]["online"] is False


@pytest.mark.parametrize(("states", "reason"), [({"brightness": 140}, "brightness"), ({"on": "yes"}, "on")])
def test_an_invalid_state_is_refused_with_the_reason_and_nothing_is_stored(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph, states: dict[str, Any], reason: str
) -> None:
    before = dict(store.devices[("alice", "lamp-1")]["state"])
    refusals: list[str] = []
    reporter.handle(message("lamp-1", states), "m", now_ms(), refusals.append)
    [refusal] = refusals
    assert refusal.startswith("state not applied: ")
    assert reason in refusal
    assert store.devices[("alice", "lamp-1")]["state"] == before
    assert homegraph.bodies == []
    assert store.entries == {}


def test_a_message_for_an_unknown_device_is_refused_whole(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    with pytest.raises(InvalidMessage, match="no device 'nope'"):
        reporter.handle(message("nope", {"on": True}), "m", now_ms())
    assert homegraph.bodies == []
    assert store.entries == {}


def test_keys_no_trait_defines_are_applied_without_and_said(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    refusals: list[str] = []
    reporter.handle(message("lamp-1", {"on": True, "colour": "red"}), "m", now_ms(), refusals.append)
    assert refusals == ["state keys that no trait of the device defines were ignored: colour"]
    assert store.devices[("alice", "lamp-1")]["state"]["on"] is True
    assert homegraph.states()["lamp-1"]["on"] is True


def test_messages_older_than_the_maximum_age_are_dropped(reporter: Reporter, store: MemoryReportStore) -> None:
    published = now_ms() - int(FAST.max_message_age_s * 1000) - 1000
    refusals: list[str] = []
    assert reporter.handle(message("lamp-1", {"on": True}), "m", published, refusals.append) == TOO_OLD
    assert refusals == [f"older than the maximum message age ({FAST.max_message_age_s:g} s): dropped"]
    assert store.devices[("alice", "lamp-1")]["state"]["on"] is False


def test_users_who_are_not_linked_get_nothing_but_their_state_is_kept(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    store.put_user("alice", linked=False)
    assert reporter.handle(message("lamp-1", {"on": True}), "m", now_ms()) == NOT_LINKED
    assert store.devices[("alice", "lamp-1")]["state"]["on"] is True
    assert homegraph.bodies == []
    assert store.entries == {}


def test_devices_that_do_not_report_state_send_no_states(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    store.put_device("alice", "quiet", document(lamp("quiet", willReportState=False)))
    assert reporter.handle(message("quiet", {"on": True}), "m", now_ms()) == UNCHANGED
    assert homegraph.bodies == []


# Coalescing


def test_messages_of_one_user_close_together_make_one_call(
    make_reporter: Callable[..., Reporter], homegraph: RecordingHomeGraph
) -> None:
    reporter = make_reporter(Settings(**{**FAST.__dict__, "window_ms": COALESCING_WINDOW_MS}))
    threads = [
        threading.Thread(target=reporter.handle, args=(message(d, {"on": True}), f"m-{d}", now_ms()))
        for d in ("lamp-1", "lamp-2", "lamp-3")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [body] = homegraph.bodies
    assert set(body["payload"]["devices"]["states"]) == {"lamp-1", "lamp-2", "lamp-3"}


def test_coalescing_works_across_instances_sharing_the_store(
    make_reporter: Callable[..., Reporter], homegraph: RecordingHomeGraph, store: MemoryReportStore
) -> None:
    settings = Settings(**{**FAST.__dict__, "window_ms": COALESCING_WINDOW_MS})
    instances = [make_reporter(settings) for _ in range(3)]  # separate processes: no shared in-process state
    errors: list[BaseException] = []

    def run(instance: Reporter, device_id: str) -> None:
        try:
            instance.handle(message(device_id, {"brightness": 55}), f"m-{device_id}", now_ms())
        except BaseException as problem:  # pragma: no cover - reported below
            errors.append(problem)

    threads = [
        threading.Thread(target=run, args=(instance, device_id))
        for instance, device_id in zip(instances, ("lamp-1", "lamp-2", "lamp-3"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(homegraph.bodies) == 1
    assert homegraph.states() == {
        d: {"on": False, "brightness": 55, "online": True} for d in ("lamp-1", "lamp-2", "lamp-3")
    }
    assert store.entries == {}
    assert store.leases == {}


def test_an_invocation_that_died_after_queueing_is_covered_by_the_next_flush(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    # The first delivery applies and queues, then "dies" before it reports (its wait is cut short).
    died = Reporter(store, lambda: homegraph, Settings(**{**FAST.__dict__, "wait_budget_s": 0}))
    store.try_lease("alice", "someone-else", now_ms(), now_ms() + 60_000)  # a flusher that hangs
    with pytest.raises(ReportDeferred):
        died.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert len(store.entries) == 1
    assert homegraph.bodies == []
    store.leases.clear()  # the hung flusher's lease expires
    # Another message of the user flushes the whole queue, the dead one's entry included.
    reporter.handle(message("lamp-2", {"on": True}), "m2", now_ms())
    assert homegraph.states() == {d: {"on": True, "brightness": 10, "online": True} for d in ("lamp-1", "lamp-2")}
    assert store.entries == {}
    # The redelivery of the first message finds its entry covered: no call.
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert len(homegraph.bodies) == 1


# Notifications


def test_a_notification_is_sent_once_with_its_event_id(reporter: Reporter, homegraph: RecordingHomeGraph) -> None:
    detection = {"ObjectDetection": {"priority": 0, "detectionTimestamp": BASE_MS, "objects": {"familiar": 1}}}
    msg = message("doorbell", {}, notifications=detection, event_id="press-1")
    reporter.handle(msg, "m1", now_ms())
    reporter.handle(msg, "m1", now_ms())  # redelivered
    reporter.handle(msg, "m2", now_ms())  # published again by the device cloud
    [body] = homegraph.bodies
    assert body["eventId"] == "press-1"
    assert body["payload"]["devices"] == {"notifications": {"doorbell": detection}}


def test_notifications_need_notification_support_on_the_device(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    store.put_device("alice", "quiet-bell", document(doorbell("quiet-bell", notifications=False)))
    detection = {"ObjectDetection": {"priority": 0, "detectionTimestamp": BASE_MS, "objects": {"unfamiliar": 2}}}
    reporter.handle(message("quiet-bell", {}, notifications=detection, event_id="e"), "m", now_ms())
    assert homegraph.bodies == []


@pytest.mark.parametrize(
    ("notifications", "reason"),
    [
        (
            {"ObjectDetection": {"priority": 0, "detectionTimestamp": 1_700_000_000, "objects": {"familiar": 1}}},
            "detectionTimestamp",
        ),
        ({"ObjectDetection": {"priority": 0, "detectionTimestamp": BASE_MS, "objects": {}}}, "objects"),
        ({"RunCycle": {"priority": 0, "status": "SUCCESS", "currentCycleRemainingTime": 0}}, "not a trait of device"),
    ],
)
def test_invalid_notifications_are_refused_and_the_rest_of_the_message_applied(
    reporter: Reporter,
    store: MemoryReportStore,
    homegraph: RecordingHomeGraph,
    notifications: dict[str, Any],
    reason: str,
) -> None:
    refusals: list[str] = []
    reporter.handle(
        message("doorbell", {}, online=False, notifications=notifications, event_id="e"), "m", now_ms(), refusals.append
    )
    [refusal] = refusals
    assert refusal.startswith("notifications not announced: ")
    assert reason in refusal
    assert store.devices[("alice", "doorbell")]["online"] is False
    assert all("notifications" not in body["payload"]["devices"] for body in homegraph.bodies)


def test_a_sensor_notification_goes_with_the_new_sensor_state(
    reporter: Reporter, homegraph: RecordingHomeGraph
) -> None:
    smoke = [{"name": "SmokeLevel", "currentSensorState": "smoke detected"}]
    announcement = {"SensorState": {"priority": 0, "name": "SmokeLevel", "currentSensorState": "smoke detected"}}
    reporter.handle(
        message("smoke", {"currentSensorStateData": smoke}, notifications=announcement, event_id="smoke-1"),
        "m",
        now_ms(),
    )
    [body] = homegraph.bodies
    assert body["payload"]["devices"]["states"]["smoke"]["currentSensorStateData"] == smoke
    assert body["payload"]["devices"]["notifications"] == {"smoke": announcement}


def test_a_finished_run_cycle_is_announced_by_itself_once(reporter: Reporter, homegraph: RecordingHomeGraph) -> None:
    done = {"currentTotalRemainingTime": 0, "currentCycleRemainingTime": 0, "currentRunCycle": [], "isRunning": False}
    reporter.handle(message("washer", done), "m1", now_ms())
    reporter.handle(message("washer", done), "m1", now_ms())
    [(event_id, device_id, notification)] = homegraph.notifications()
    assert device_id == "washer"
    assert event_id
    assert notification == {"RunCycle": {"priority": 0, "status": "SUCCESS", "currentCycleRemainingTime": 0}}


# Follow-ups


def pending(store: MemoryReportStore, command: str, params: dict[str, Any], device_id: str, created_ms: int) -> None:
    store.save_pending(
        PendingCommand(
            command_id="cmd-1",
            agent_user_id="alice",
            device_id=device_id,
            command=command,
            params=params,
            token="google-token-1",
            created_ms=created_ms,
            expires_ms=created_ms + FOLLOW_UP_TTL_MS,
        )
    )


def test_a_command_result_sends_the_follow_up_with_the_new_state_once(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    pending(store, "action.devices.commands.LockUnlock", {"lock": True}, "front-door", now_ms())
    result = message("front-door", {"isLocked": True}, command_id="cmd-1")
    reporter.handle(result, "m1", now_ms())
    reporter.handle(result, "m1", now_ms())  # redelivered
    reporter.handle(message("front-door", {"isLocked": True}, BASE_MS + 1, command_id="cmd-1"), "m2", now_ms())
    [body] = homegraph.bodies
    devices = body["payload"]["devices"]
    assert devices["notifications"] == {
        "front-door": {
            "LockUnlock": {
                "priority": 0,
                "followUpResponse": {"status": "SUCCESS", "isLocked": True, "followUpToken": "google-token-1"},
            }
        }
    }
    assert devices["states"]["front-door"]["isLocked"] is True
    assert body["eventId"]


def test_a_failed_command_sends_a_failure_follow_up(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    pending(store, "action.devices.commands.LockUnlock", {"lock": True}, "front-door", now_ms())
    jammed = {"isJammed": True, "isLocked": None}  # a jammed lock does not know whether it is locked
    reporter.handle(
        message("front-door", jammed, command_id="cmd-1", error_code="deviceJammingDetected"), "m", now_ms()
    )
    [(_, _, notification)] = homegraph.notifications()
    assert notification["LockUnlock"]["followUpResponse"] == {
        "status": "FAILURE",
        "errorCode": "deviceJammingDetected",
        "followUpToken": "google-token-1",
    }


def test_an_expired_token_sends_no_follow_up_but_the_state(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    pending(store, "action.devices.commands.LockUnlock", {"lock": True}, "front-door", now_ms() - FOLLOW_UP_TTL_MS - 1)
    reporter.handle(message("front-door", {"isLocked": True}, command_id="cmd-1"), "m", now_ms())
    [body] = homegraph.bodies
    assert "notifications" not in body["payload"]["devices"]
    assert body["payload"]["devices"]["states"]["front-door"]["isLocked"] is True


def test_an_unknown_command_id_sends_no_follow_up(reporter: Reporter, homegraph: RecordingHomeGraph) -> None:
    reporter.handle(message("front-door", {"isLocked": True}, command_id="never-issued"), "m", now_ms())
    assert homegraph.notifications() == []
    assert homegraph.states()["front-door"]["isLocked"] is True


# HomeGraph errors


def test_404_marks_the_user_unlinked_and_stops_reporting(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    homegraph.forgotten_users.add("alice")  # Google does not know the user: devices.query answers 404 too
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert store.users["alice"]["linked"] is False
    assert store.users["alice"]["unlinkedBy"] == "homegraph-404"
    assert store.entries == {}
    assert reporter.handle(message("lamp-1", {"on": False}, BASE_MS + 1), "m2", now_ms()) == NOT_LINKED
    assert homegraph.bodies == []


def test_404_right_after_a_sync_does_not_unlink(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    store.put_user("alice", linked=True, linked_at_ms=now_ms())
    reporter.settings = Settings(**{**FAST.__dict__, "initial_report_delay_s": 60})
    homegraph.failures.append(NotFound("reportStateAndNotification", 404, "not found"))
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert store.users["alice"]["linked"] is True
    assert store.entries == {}


def test_400_on_a_coalesced_call_costs_only_the_refused_device(
    make_reporter: Callable[..., Reporter], homegraph: RecordingHomeGraph, store: MemoryReportStore
) -> None:
    def refuse(body: dict[str, Any]) -> BadRequest | None:
        if "lamp-2" in body["payload"]["devices"].get("states", {}):
            return BadRequest("reportStateAndNotification", 400, "invalid argument")
        return None

    homegraph.refuse = refuse
    reporter = make_reporter(Settings(**{**FAST.__dict__, "window_ms": COALESCING_WINDOW_MS}))
    threads = [
        threading.Thread(target=reporter.handle, args=(message(d, {"on": True}), f"m-{d}", now_ms()))
        for d in ("lamp-1", "lamp-2", "lamp-3")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(homegraph.states()) == {"lamp-1", "lamp-3"}
    assert store.entries == {}
    # Given up for good: the refused state is not sent again, but its next change is.
    homegraph.refuse = None
    reporter.handle(message("lamp-2", {"on": True}, BASE_MS + 1), "again", now_ms())
    assert "lamp-2" not in homegraph.states()
    reporter.handle(message("lamp-2", {"brightness": 80}, BASE_MS + 2), "changed", now_ms())
    assert homegraph.states()["lamp-2"] == {"brightness": 80}


def test_403_is_dropped_and_not_remembered_as_reported(
    reporter: Reporter, homegraph: RecordingHomeGraph, store: MemoryReportStore
) -> None:
    homegraph.failures.append(Forbidden("reportStateAndNotification", 403, "The caller does not have permission"))
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert homegraph.bodies == []
    assert store.entries == {}
    reporter.handle(message("lamp-1", {"brightness": 30}, BASE_MS + 1), "m2", now_ms())
    assert homegraph.states()["lamp-1"] == {"on": True, "brightness": 30, "online": True}


def test_transient_errors_fail_the_invocation_and_the_redelivery_reports(
    reporter: Reporter, homegraph: RecordingHomeGraph, store: MemoryReportStore
) -> None:
    homegraph.failures.append(Transient("reportStateAndNotification", 503, "unavailable", attempts=4))
    with pytest.raises(ReportDeferred, match="unavailable"):
        reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert len(store.entries) == 1
    assert homegraph.bodies == []
    import time

    time.sleep(FAST.retry_after_s + 0.05)  # the lease is held a while for a failing HomeGraph
    assert reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms()) == REPORTED  # redelivered
    assert homegraph.states()["lamp-1"]["on"] is True
    assert store.entries == {}


def test_an_announcement_sent_before_a_transient_failure_is_not_sent_again(
    reporter: Reporter, homegraph: RecordingHomeGraph, store: MemoryReportStore
) -> None:
    detection = {"ObjectDetection": {"priority": 0, "detectionTimestamp": BASE_MS, "objects": {"familiar": 1}}}
    calls = {"n": 0}

    def second_call_fails(body: dict[str, Any]) -> Transient | None:
        calls["n"] += 1
        return Transient("reportStateAndNotification", 500, "boom") if calls["n"] == 2 else None

    homegraph.refuse = second_call_fails
    # Two presses queued while another instance holds the lease (and then goes away).
    store.try_lease("alice", "holder", now_ms(), now_ms() + 60_000)
    queued_only = Reporter(store, lambda: homegraph, Settings(**{**FAST.__dict__, "wait_budget_s": 0}))
    for n in (1, 2):
        with pytest.raises(ReportDeferred):
            queued_only.handle(
                message("doorbell", {}, notifications=detection, event_id=f"press-{n}"), f"n{n}", now_ms()
            )
    store.leases.clear()
    # A request carries one eventId: two calls; the first goes through, the second fails.
    with pytest.raises(ReportDeferred):
        reporter.handle(message("doorbell", {}, notifications=detection, event_id="press-1"), "n1", now_ms())
    assert len(store.entries) == 1
    import time

    time.sleep(FAST.retry_after_s + 0.05)
    reporter.handle(message("doorbell", {}, notifications=detection, event_id="press-2"), "n2", now_ms())
    assert sorted(n[0] for n in homegraph.notifications()) == ["press-1", "press-2"]
    assert store.entries == {}


# Writes made straight to the device document (the trigger's path)


def test_a_device_cloud_write_is_reported(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    before, after = store.write_state("alice", "lamp-1", {"on": True, "brightness": 10})
    assert reporter.device_written("alice", "lamp-1", before, after, "evt-1", now_ms()) == REPORTED
    assert reporter.device_written("alice", "lamp-1", before, after, "evt-1", now_ms()) == REPORTED  # retried event
    assert homegraph.states() == {"lamp-1": {"on": True, "brightness": 10, "online": True}}
    assert len(homegraph.bodies) == 1


def test_the_pipelines_own_writes_are_not_reported_twice(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    before = document(lamp("lamp-1"))
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    after = dict(store.devices[("alice", "lamp-1")])
    assert after[REPORT_SEQ] == 1
    assert reporter.device_written("alice", "lamp-1", before, after, "evt", now_ms()) == IGNORED
    assert len(homegraph.bodies) == 1


def test_definition_only_writes_are_not_state_reports(reporter: Reporter, store: MemoryReportStore) -> None:
    before = document(lamp("lamp-1"))
    after = {**before, "name": {"name": "renamed"}}
    assert reporter.device_written("alice", "lamp-1", before, after, "evt", now_ms()) == IGNORED
    assert reporter.device_written("alice", "lamp-1", None, after, "evt2", now_ms()) == IGNORED
    assert reporter.device_written("alice", "lamp-1", before, None, "evt3", now_ms()) == IGNORED


def test_a_finished_cycle_written_by_a_device_cloud_is_announced(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    done = {
        **store.devices[("alice", "washer")]["state"],
        "currentTotalRemainingTime": 0,
        "currentCycleRemainingTime": 0,
    }
    before, after = store.write_state("alice", "washer", done)
    reporter.device_written("alice", "washer", before, after, "evt-w", now_ms())
    [(_, device_id, notification)] = homegraph.notifications()
    assert device_id == "washer"
    assert notification["RunCycle"]["status"] == "SUCCESS"


# The full report after a SYNC


def test_after_a_sync_every_device_is_reported_in_full_once(
    make_reporter: Callable[..., Reporter], store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    reporter = make_reporter(Settings(**{**FAST.__dict__, "initial_report_delay_s": 0.2}))
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    linked_at = now_ms()
    store.put_user("alice", linked=True, linked_at_ms=linked_at)
    started = now_ms()
    assert reporter.handle_report_all(ReportAllRequest("alice", linked_at), "sync-1", now_ms()) == REPORTED
    assert now_ms() - started >= 190  # waited for Google to process the SYNC
    body = homegraph.bodies[-1]
    states = body["payload"]["devices"]["states"]
    # Every device that reports state, whole, even what was reported before; the doorbell reports none.
    assert set(states) == {"lamp-1", "lamp-2", "lamp-3", "front-door", "washer", "smoke", "router"}
    assert states["lamp-1"] == {"on": True, "brightness": 10, "online": True}
    assert "guestNetworkPassword" not in states["router"]
    calls = len(homegraph.bodies)
    assert reporter.handle_report_all(ReportAllRequest("alice", linked_at), "sync-1", now_ms()) == SUPERSEDED
    assert len(homegraph.bodies) == calls


def test_a_report_all_request_of_an_older_sync_is_superseded(reporter: Reporter, store: MemoryReportStore) -> None:
    store.put_user("alice", linked=True, linked_at_ms=BASE_MS + 10)
    assert reporter.handle_report_all(ReportAllRequest("alice", BASE_MS), "old", now_ms()) == SUPERSEDED


def test_a_report_all_request_of_an_unlinked_user_does_nothing(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    store.put_user("alice", linked=False)
    assert reporter.handle_report_all(ReportAllRequest("alice", BASE_MS), "x", now_ms()) == NOT_LINKED
    assert homegraph.bodies == []


def test_idle_users_are_forgotten_by_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.reporting import coordination

    monkeypatch.setattr(coordination, "MAX_LOCAL_SLOTS", 4)
    local = coordination.InstanceSlots()
    busy = local.slot("busy")
    busy.leader = True
    for n in range(10):
        local.slot(f"idle-{n}")
    assert local.slot("busy") is busy  # a user being flushed keeps its slot
    assert len(local._slots) <= 8


def test_an_outdated_message_still_announces_what_happened(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    # Two presses of a doorbell, the later one handled first: the earlier press is still announced.
    detection = {"ObjectDetection": {"priority": 0, "detectionTimestamp": BASE_MS, "objects": {"familiar": 1}}}
    reporter.handle(message("doorbell", {}, BASE_MS + 5000, notifications=detection, event_id="p2"), "m2", now_ms())
    reporter.handle(message("doorbell", {}, BASE_MS + 1000, notifications=detection, event_id="p1"), "m1", now_ms())
    assert sorted(n[0] for n in homegraph.notifications()) == ["p1", "p2"]
    # A lock's result observed before a newer state: the follow-up goes, the outdated state is not stored.
    pending(store, "action.devices.commands.LockUnlock", {"lock": True}, "front-door", now_ms())
    reporter.handle(message("front-door", {"isJammed": False}, BASE_MS + 9000), "newer", now_ms())
    outcome = reporter.handle(
        message("front-door", {"isLocked": True}, BASE_MS + 2000, command_id="cmd-1"), "r", now_ms()
    )
    assert outcome == REPORTED
    [follow_up] = [n for n in homegraph.notifications() if n[1] == "front-door"]
    assert follow_up[2]["LockUnlock"]["followUpResponse"]["status"] == "SUCCESS"
    assert store.devices[("alice", "front-door")]["state"]["isLocked"] is False
    assert reporter.handle(message("lamp-1", {"on": True}, BASE_MS + 9000), "a", now_ms()) == REPORTED
    assert reporter.handle(message("lamp-1", {"on": False}, BASE_MS + 1000), "b", now_ms()) == STALE


def test_devices_of_a_call_that_needed_retries_are_reported_again_in_full(
    reporter: Reporter, store: MemoryReportStore, homegraph: RecordingHomeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.core.homegraph import Ok

    answered = homegraph.report_state_and_notification
    attempts = iter([2])  # the first call took two attempts: the first may still land late at HomeGraph

    def with_attempts(body: Any) -> Ok:
        answer = answered(body)
        return Ok(answer.body, attempts=next(attempts, 1))

    monkeypatch.setattr(homegraph, "report_state_and_notification", with_attempts)
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    reporter.handle(message("lamp-2", {"on": True}, BASE_MS + 1), "m2", now_ms())
    first, again, other = homegraph.bodies
    assert first["payload"]["devices"]["states"] == {"lamp-1": {"on": True, "brightness": 10, "online": True}}
    assert again["payload"]["devices"]["states"] == first["payload"]["devices"]["states"]
    assert set(other["payload"]["devices"]["states"]) == {"lamp-2"}
    assert store.entries == {}
