"""SYNC never waits on Pub/Sub (functions/fulfillment/initial_report.py): the full-report request after a SYNC is
published in the background, bounded, its failure logged; a Pub/Sub that hangs changes no SYNC answer and holds
none back (no emulator)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from functions.core import tokens
from functions.core.state_messages import ReportAllRequest, parse
from functions.fulfillment.initial_report import Background, InitialReportAfterSync
from functions.fulfillment.service import Fulfillment
from tests.fakes.memory import MemoryStore
from tests.fakes.publishers import HangingPublisher, RecordingPublisher, returns_while
from tools.google import sync_request

NOW = 1_800_000_000_000
LAMP: dict[str, Any] = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Lamp"},
    "willReportState": True,
    "state": {"on": False},
}


@pytest.fixture
def hanging() -> Iterator[HangingPublisher]:
    publisher = HangingPublisher()
    yield publisher
    publisher.release.set()


def fulfillment(publisher: RecordingPublisher, background: Background) -> tuple[Fulfillment, str]:
    store = MemoryStore()
    for index in range(50):
        store.put_device("alice", f"lamp-{index}", LAMP)
    wrapped = InitialReportAfterSync(store, lambda: publisher, lambda: "device-state", background.submit)
    service = Fulfillment(wrapped, clock_ms=lambda: NOW, token_cache_ms=0)
    return service, tokens.issue(store, tokens.ACCESS, "alice", 3600, NOW)


def syncs(service: Fulfillment, token: str, rounds: int) -> list[dict[str, Any]]:
    bodies = []
    for _ in range(rounds):
        reply = service.handle(token, sync_request("sync-1"))
        assert reply.status == 200
        bodies.append(reply.body)
    return bodies


def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_hanging_pubsub_changes_nothing_in_the_answers_of_sync(hanging: HangingPublisher) -> None:
    """The hanging publish never returns while the test runs, so a SYNC that waited on it would never answer: every
    answer arriving proves none waited, without timing anything (latency belongs in bench/)."""
    healthy = RecordingPublisher()
    normal, normal_token = fulfillment(healthy, Background("healthy", workers=1, limit=100))
    stuck, stuck_token = fulfillment(hanging, Background("hanging", workers=1, limit=100))

    normal_bodies = syncs(normal, normal_token, 18)
    stuck_bodies = returns_while(hanging, lambda: syncs(stuck, stuck_token, 18))

    assert stuck_bodies == normal_bodies
    assert eventually(lambda: len(healthy.messages) == 18)
    topic, data, attributes = healthy.messages[0]
    assert topic == "device-state"
    assert parse(data, attributes, NOW) == ReportAllRequest("alice", NOW)
    assert eventually(lambda: len(hanging.messages) == 1), "the first publish starts and hangs"
    time.sleep(0.1)  # a second publish starting now would be a second worker the queue does not have
    assert len(hanging.messages) == 1, "one publish hangs; the others wait their turn in the bounded queue"


def test_a_full_queue_drops_the_request_with_a_log_line_and_sync_still_answers(
    hanging: HangingPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    service, token = fulfillment(hanging, Background("hanging", workers=1, limit=2))
    with caplog.at_level(logging.WARNING):
        returns_while(hanging, lambda: syncs(service, token, 1))
        assert eventually(lambda: len(hanging.messages) == 1), "the first publish hangs"
        returns_while(hanging, lambda: syncs(service, token, 5))
    dropped = [r for r in caplog.records if r.getMessage() == "background work dropped: the queue is full"]
    assert len(dropped) == 5 - 2, "one publishing, two waiting, the rest dropped (the next SYNC asks again)"
    assert len(hanging.messages) == 1


def test_a_failed_publish_is_logged_and_never_fails_the_sync(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(RecordingPublisher):
        def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
            raise RuntimeError("no Pub/Sub today")

    service, token = fulfillment(Failing(), Background("failing", workers=1, limit=10))
    with caplog.at_level(logging.WARNING):
        assert service.handle(token, sync_request()).status == 200
        assert eventually(
            lambda: any(r.getMessage() == "the full report after SYNC could not be requested" for r in caplog.records)
        )
    failed = [r for r in caplog.records if r.getMessage() == "the full report after SYNC could not be requested"]
    assert {getattr(record, "reason", "") for record in failed} == {"no Pub/Sub today"}


def test_the_background_starts_no_thread_before_its_first_work() -> None:
    def its_threads() -> list[threading.Thread]:  # only its own: other tests' threads come and go meanwhile
        return [thread for thread in threading.enumerate() if thread.name.startswith("idle-")]

    background = Background("idle", workers=3, limit=1)
    assert its_threads() == []
    done = threading.Event()
    assert background.submit(done.set)
    assert done.wait(30)
    assert len(its_threads()) == 3
