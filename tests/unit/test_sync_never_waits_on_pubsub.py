"""SYNC never waits on Pub/Sub (functions/fulfillment/initial_report.py): the full-report request after a SYNC is
published in the background, bounded, its failure logged; a Pub/Sub that hangs changes neither SYNC's answer nor its
latency (no emulator)."""

from __future__ import annotations

import logging
import statistics
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
from tools.google import sync_request

NOW = 1_800_000_000_000
LAMP: dict[str, Any] = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Lamp"},
    "willReportState": True,
    "state": {"on": False},
}
HANG_S = 30.0  # PUBLISH_TIMEOUT_S: how long a real publish may wait


class Recording:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, Mapping[str, str] | None]] = []

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        self.messages.append((topic, data, attributes))
        return str(len(self.messages))


class Hanging(Recording):
    """A Pub/Sub that takes every message and never answers (until released)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        message_id = super().publish(topic, data, attributes)
        if not self.release.wait(HANG_S):
            raise TimeoutError("Pub/Sub did not answer")
        return message_id  # released when the test ends: the rest of the queue goes quietly


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    publisher = Hanging()
    yield publisher
    publisher.release.set()


def fulfillment(publisher: Recording, background: Background) -> tuple[Fulfillment, str]:
    store = MemoryStore()
    for index in range(50):
        store.put_device("alice", f"lamp-{index}", LAMP)
    wrapped = InitialReportAfterSync(store, lambda: publisher, lambda: "device-state", background.submit)
    service = Fulfillment(wrapped, clock_ms=lambda: NOW, token_cache_ms=0)
    return service, tokens.issue(store, tokens.ACCESS, "alice", 3600, NOW)


def timed_syncs(service: Fulfillment, token: str, rounds: int) -> tuple[list[float], list[dict[str, Any]]]:
    latencies, bodies = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        reply = service.handle(token, sync_request("sync-1"))
        latencies.append(time.perf_counter() - started)
        assert reply.status == 200
        bodies.append(reply.body)
    return latencies, bodies


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_hanging_pubsub_changes_neither_the_answer_nor_the_latency_of_sync(hanging: Hanging) -> None:
    healthy = Recording()
    normal, normal_token = fulfillment(healthy, Background("healthy", workers=1, limit=100))
    stuck, stuck_token = fulfillment(hanging, Background("hanging", workers=1, limit=100))
    timed_syncs(normal, normal_token, 3)  # warm: schemas compiled, devices validated
    timed_syncs(stuck, stuck_token, 3)

    normal_s, normal_bodies = timed_syncs(normal, normal_token, 15)
    stuck_s, stuck_bodies = timed_syncs(stuck, stuck_token, 15)

    assert stuck_bodies == normal_bodies
    assert max(stuck_s) < 1.0, "no SYNC waited for the hanging publish"
    assert statistics.median(stuck_s) <= statistics.median(normal_s) * 2 + 0.02, (stuck_s, normal_s)
    assert eventually(lambda: len(healthy.messages) == 18)
    topic, data, attributes = healthy.messages[0]
    assert topic == "device-state"
    assert parse(data, attributes, NOW) == ReportAllRequest("alice", NOW)
    assert len(hanging.messages) == 1, "one publish hangs; the others wait their turn in the bounded queue"


def test_a_full_queue_drops_the_request_with_a_log_line_and_sync_still_answers(
    hanging: Hanging, caplog: pytest.LogCaptureFixture
) -> None:
    service, token = fulfillment(hanging, Background("hanging", workers=1, limit=2))
    with caplog.at_level(logging.WARNING):
        first, _ = timed_syncs(service, token, 1)
        assert eventually(lambda: len(hanging.messages) == 1), "the first publish hangs"
        latencies, _ = timed_syncs(service, token, 5)
    assert max(first + latencies) < 1.0
    dropped = [r for r in caplog.records if r.getMessage() == "background work dropped: the queue is full"]
    assert len(dropped) == 5 - 2, "one publishing, two waiting, the rest dropped (the next SYNC asks again)"
    assert len(hanging.messages) == 1


def test_a_failed_publish_is_logged_and_never_fails_the_sync(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(Recording):
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
    before = threading.active_count()
    background = Background("idle", workers=3, limit=1)
    assert threading.active_count() == before
    done = threading.Event()
    assert background.submit(done.set)
    assert done.wait(5)
    assert threading.active_count() == before + 3
