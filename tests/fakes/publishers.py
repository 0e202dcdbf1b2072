"""Pub/Sub publishers for tests: one that records, one that takes every message and never answers until the test
releases it (a Pub/Sub that hangs)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, Mapping[str, str] | None]] = []

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        self.messages.append((topic, data, attributes))
        return str(len(self.messages))


class HangingPublisher(RecordingPublisher):
    """Records each message, then holds the publishing thread until `release` is set (the fixture sets it when the
    test ends). No timeout of its own: a caller that waits on it never returns, so a test can tell waiting from not
    waiting without measuring time."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        message_id = super().publish(topic, data, attributes)
        self.release.wait()
        return message_id


def returns_while(publisher: HangingPublisher, action: Callable[[], T], guard_s: float = 60.0) -> T:
    """Runs `action` on a thread and returns its result; fails if it has not returned within `guard_s` (a
    deadlock guard, not a latency bound) or if the publisher was released meanwhile (then it proves nothing)."""
    results: list[T] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            results.append(action())
        except BaseException as failure:
            failures.append(failure)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(guard_s)
    assert not thread.is_alive(), "the action waited for the hanging publish"
    assert not publisher.release.is_set(), "the publisher was released before the action returned"
    if failures:
        raise failures[0]
    return results[0]
