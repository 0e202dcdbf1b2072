"""A 404 from reportStateAndNotification (functions.reporting.flusher): about the user only when devices.query says so.

Google answers 404 both for an agentUserId it does not know and for a device it does not know (added after the last
SYNC, or refused in it). The fake HomeGraph (tests/unit/reporting_helpers.py) answers like Google: `forgotten_users`
get 404 for every call, a report naming one of `unknown_devices` gets 404 and devices.query leaves those out.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from functions.core.homegraph import NotFound, Transient
from functions.core.state_messages import ReportAllRequest
from functions.reporting.flusher import ABOUT_DEVICES, ABOUT_USER, Flusher
from functions.reporting.model import NOT_LINKED, REPORTED, ApplyWrite, ReportDeferred, Settings
from functions.reporting.pipeline import Reporter
from functions.reporting.planning import NOTIFICATION, Event, QueueEntry
from functions.reporting.runtime import Runtime
from tests.fakes.memory_reporting import MemoryReportStore
from tests.unit.reporting_helpers import BASE_MS, RecordingHomeGraph, document, doorbell, lamp, message, smoke_detector

FAST = Settings(
    window_ms=30,
    wait_budget_s=5,
    poll_ms=10,
    lease_ms=2_000,
    retry_after_s=0.05,
    initial_report_delay_s=0,
    resend_after_s=0.05,
)
ON = {"on": True, "brightness": 10, "online": True}  # a lamp of the fixtures, switched on, as reported in full


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


@pytest.fixture
def store() -> MemoryReportStore:
    store = MemoryReportStore()
    store.put_user("alice", linked=True, linked_at_ms=BASE_MS - 3_600_000)
    for device in (lamp("lamp-1"), lamp("lamp-2"), lamp("lamp-3"), doorbell(), smoke_detector()):
        store.put_device("alice", device["id"], document(device))
    return store


@pytest.fixture
def homegraph() -> RecordingHomeGraph:
    return RecordingHomeGraph()


def reporter_for(store: MemoryReportStore, homegraph: RecordingHomeGraph, **settings: Any) -> Reporter:
    return Reporter(store, lambda: homegraph, dataclasses.replace(FAST, **settings))


def flusher_for(store: MemoryReportStore, homegraph: RecordingHomeGraph, **settings: Any) -> Flusher:
    return Flusher(Runtime(store, lambda: homegraph, dataclasses.replace(FAST, **settings)))


def queue(store: MemoryReportStore, device_id: str, *events: Event, full: bool = True) -> str:
    """An entry for the device in the user's queue (full: its whole state is due), as applying a change leaves it."""
    entry = QueueEntry(f"entry-{device_id}", device_id, now_ms(), full=full, events=events)
    assert store.commit_apply("alice", ApplyWrite(device_id, entry=entry), now_ms())
    return entry.entry_id


def press(device_id: str, event_id: str, created_ms: int) -> Event:
    detection = {"ObjectDetection": {"priority": 0, "detectionTimestamp": created_ms, "objects": {"unclassified": 1}}}
    return Event(event_id, device_id, NOTIFICATION, detection, created_ms)


def switch_on(store: MemoryReportStore, *device_ids: str) -> None:
    for device_id in device_ids:
        store.write_state("alice", device_id, {"on": True, "brightness": 10})
        queue(store, device_id)


def decisions(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The fields of each 404 decision's log line."""
    return [vars(r) for r in caplog.records if r.getMessage().startswith("HomeGraph answered 404")]


# The user


def test_a_404_for_a_user_google_does_not_know_marks_them_unlinked(
    store: MemoryReportStore, homegraph: RecordingHomeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    homegraph.forgotten_users.add("alice")
    reporter = reporter_for(store, homegraph)
    reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert homegraph.queries == [("alice", ["lamp-1"])]  # asked whom the 404 was about
    assert store.users["alice"]["linked"] is False
    assert store.users["alice"]["unlinkedBy"] == "homegraph-404"
    assert store.entries == {}
    assert homegraph.sync_requests == []
    [decision] = decisions(caplog)
    assert (decision["agentUserId"], decision["about"], decision["unknownDevices"]) == ("alice", ABOUT_USER, [])
    assert "marked unlinked" in decision["outcome"]
    assert reporter.handle(message("lamp-1", {"on": False}, BASE_MS + 1), "m2", now_ms()) == NOT_LINKED
    assert len(homegraph.queries) == 1  # nothing more for them


def test_a_404_for_an_unknown_user_right_after_a_sync_only_drops_the_call(
    store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    store.put_user("alice", linked=True, linked_at_ms=now_ms())
    homegraph.forgotten_users.add("alice")
    reporter_for(store, homegraph, initial_report_delay_s=60).handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert store.users["alice"]["linked"] is True
    assert store.entries == {}
    assert homegraph.sync_requests == []


def test_a_404_the_query_cannot_explain_drops_the_call_and_unlinks_nobody(
    store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    # The report is refused with 404, yet the query knows the user and the device: no device to blame.
    homegraph.failures.append(NotFound("reportStateAndNotification", 404, "Requested entity was not found."))
    reporter_for(store, homegraph).handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert homegraph.queries == [("alice", ["lamp-1"])]
    assert store.users["alice"]["linked"] is True
    assert homegraph.sync_requests == []
    assert store.entries == {}  # dropped: the next change of the lamp is reported again
    reporter_for(store, homegraph).handle(message("lamp-1", {"on": False}, BASE_MS + 1), "m2", now_ms())
    assert homegraph.states()["lamp-1"]["on"] is False


# Devices


def test_a_404_for_a_device_google_does_not_know_syncs_the_user_and_reports_the_others(
    store: MemoryReportStore, homegraph: RecordingHomeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    homegraph.unknown_devices.add("lamp-2")  # e.g. added after the last SYNC
    switch_on(store, "lamp-1", "lamp-2", "lamp-3")
    result = flusher_for(store, homegraph).flush("alice")
    assert homegraph.queries == [("alice", ["lamp-1", "lamp-2", "lamp-3"])]
    assert homegraph.sync_requests == ["alice"]
    # The rest of the call went again at once, without the unknown device.
    [retried] = homegraph.bodies
    assert retried["payload"]["devices"]["states"] == {"lamp-1": ON, "lamp-3": ON}
    assert store.users["alice"]["linked"] is True
    assert "unlinkedBy" not in store.users["alice"]
    assert store.entries == {}
    assert result.transient is None
    # What HomeGraph holds for the unknown device is unchanged: its state is still to be told.
    assert ("alice", "lamp-2") not in store.reported
    assert store.reported[("alice", "lamp-1")]["states"] == ON
    [decision] = decisions(caplog)
    assert (decision["agentUserId"], decision["about"]) == ("alice", ABOUT_DEVICES)
    assert decision["unknownDevices"] == ["lamp-2"]
    assert decision["outcome"].startswith("requestSync sent")

    # Google runs the SYNC, which lists the device now; the full report after it sends the device's state.
    homegraph.unknown_devices.clear()
    linked_at = now_ms()
    store.put_user("alice", linked=True, linked_at_ms=linked_at)
    reporter = reporter_for(store, homegraph)
    assert reporter.handle_report_all(ReportAllRequest("alice", linked_at), "sync-1", now_ms()) == REPORTED
    assert homegraph.bodies[-1]["payload"]["devices"]["states"]["lamp-2"] == ON
    assert homegraph.sync_requests == ["alice"]


def test_a_device_answered_with_device_not_found_is_unknown_too(
    store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    homegraph.error_devices.add("lamp-2")
    switch_on(store, "lamp-1", "lamp-2")
    flusher_for(store, homegraph).flush("alice")
    assert homegraph.sync_requests == ["alice"]
    assert set(homegraph.states()) == {"lamp-1"}
    assert store.users["alice"]["linked"] is True


def test_one_request_sync_per_flush_however_many_calls_name_unknown_devices(
    store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    homegraph.unknown_devices |= {"doorbell", "smoke"}
    created = now_ms()
    queue(store, "doorbell", press("doorbell", "press-1", created))
    queue(store, "lamp-1")
    alarm = {"SensorState": {"priority": 0, "name": "SmokeLevel", "currentSensorState": "smoke detected"}}
    queue(store, "smoke", Event("smoke-1", "smoke", NOTIFICATION, alarm, created + 1))
    flusher_for(store, homegraph).flush("alice")
    # Two calls (one per announcement) were refused; each query named its unknown device; one requestSync.
    assert [devices for _, devices in homegraph.queries] == [["doorbell", "lamp-1"], ["smoke"]]
    assert homegraph.sync_requests == ["alice"]
    assert set(homegraph.states()) == {"lamp-1"}
    assert homegraph.notifications() == []  # Google cannot announce a device it does not know
    assert store.entries == {}
    assert store.users["alice"]["linked"] is True


def test_no_request_sync_right_after_a_sync_nor_in_the_full_report_after_one(
    store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    homegraph.unknown_devices.add("lamp-2")
    # Within initial_report_delay_s of a SYNC Google may still be processing it; its full report follows.
    store.put_user("alice", linked=True, linked_at_ms=now_ms())
    switch_on(store, "lamp-1", "lamp-2")
    flusher_for(store, homegraph, initial_report_delay_s=60).flush("alice")
    assert set(homegraph.states()) == {"lamp-1"}
    assert homegraph.sync_requests == []
    # The full report after the SYNC: that SYNC left the device out, another one would too (no SYNC loop).
    linked_at = now_ms()
    store.put_user("alice", linked=True, linked_at_ms=linked_at)
    reporter = reporter_for(store, homegraph)
    assert reporter.handle_report_all(ReportAllRequest("alice", linked_at), "sync-1", now_ms()) == REPORTED
    assert "lamp-2" not in homegraph.bodies[-1]["payload"]["devices"]["states"]
    assert {"lamp-1", "lamp-3", "smoke"} <= set(homegraph.bodies[-1]["payload"]["devices"]["states"])
    assert homegraph.sync_requests == []
    assert store.users["alice"]["linked"] is True
    assert store.entries == {}


# Transient failures


def test_a_query_failing_transiently_defers_the_report_and_unlinks_nobody(
    store: MemoryReportStore, homegraph: RecordingHomeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    homegraph.failures.append(NotFound("reportStateAndNotification", 404, "Requested entity was not found."))
    homegraph.query_failures.append(Transient("query", 503, "unavailable"))
    reporter = reporter_for(store, homegraph)
    with pytest.raises(ReportDeferred):
        reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms())
    assert store.users["alice"]["linked"] is True
    assert len(store.entries) == 1  # still queued
    assert homegraph.sync_requests == []
    [decision] = decisions(caplog)
    assert decision["outcome"].startswith("deferred")
    # Pub/Sub redelivers the message: the report goes through.
    assert reporter.handle(message("lamp-1", {"on": True}), "m1", now_ms()) == REPORTED
    assert homegraph.states()["lamp-1"]["on"] is True
    assert store.entries == {}


def test_a_request_sync_failing_transiently_keeps_the_unknown_devices_queued(
    store: MemoryReportStore, homegraph: RecordingHomeGraph
) -> None:
    homegraph.unknown_devices.add("lamp-2")
    homegraph.sync_failures.append(Transient("requestSync", 503, "unavailable"))
    switch_on(store, "lamp-1", "lamp-2")
    flusher = flusher_for(store, homegraph)
    result = flusher.flush("alice")
    assert result.transient is not None
    assert len(store.entries) == 2
    assert store.users["alice"]["linked"] is True
    # The retry asks again, and reports the rest.
    flusher.flush("alice")
    assert homegraph.sync_requests == ["alice", "alice"]
    assert set(homegraph.states()) == {"lamp-1"}
    assert store.entries == {}
