"""After a SYNC, HomeGraph gets a full report of the user's devices, once it had time to process the SYNC.

Google learns the devices from SYNC but their states only from QUERY or Report State; reporting right after the
SYNC gets 404 for devices Google has not processed yet (Google's samples wait, and Home Assistant waits 60 s:
homeassistant/components/google_assistant/report_state.py, INITIAL_REPORT_DELAY). So the fulfillment's SYNC
publishes a report-all request on the state topic, and the Report State function reports every device's full
state INITIAL_REPORT_DELAY_S after the SYNC (see functions.reporting.pipeline).

`InitialReportAfterSync` wraps the fulfillment's store: the SYNC marks the user linked through it
(`mark_linked`), and that is when the request is published. Publishing never fails a SYNC: a failure is logged.

SYNC never waits for Pub/Sub either (a publish waits up to PUBLISH_TIMEOUT_S, 30 s, past Google's deadline): the
deployed fulfillment hands the publish to `Background`, a few threads with a bounded queue. A request that fails,
or finds the queue full (Pub/Sub hanging), is logged and dropped: the next SYNC of the user asks again (Google
sends one on every account link and every requestSync, and each device's own reports keep flowing meanwhile), so
no sweep job is needed. Work still queued when the instance stops is lost the same way; the instance's CPU may be
throttled between requests, so the publish may go out at its next request.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from functions.core.commands import Publisher
from functions.core.ports import (
    DeviceDocument,
    FulfillmentStore,
    Snapshot,
    StateWrite,
    StoredDevice,
    known_versions,
)
from functions.core.state_messages import report_all_data

log = logging.getLogger(__name__)

# Publishes at most this many at a time, and keeps at most QUEUE_LIMIT waiting: beyond that, requests are dropped.
BACKGROUND_WORKERS = 2
QUEUE_LIMIT = 100


class Background:
    """Runs actions on a few daemon threads, off the request's path; bounded: an action beyond `limit` waiting is
    dropped with a log line. The threads start with the first action (never at import, before a server forks)."""

    def __init__(self, name: str, workers: int = BACKGROUND_WORKERS, limit: int = QUEUE_LIMIT) -> None:
        self._name = name
        self._workers = workers
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=limit)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, action: Callable[[], None]) -> bool:
        """Queues `action`; False (logged) if the queue is full."""
        with self._lock:
            while len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        try:
            self._queue.put_nowait(action)
        except queue.Full:
            log.warning("background work dropped: the queue is full", extra={"work": self._name})
            return False
        return True

    def _work(self) -> None:
        while True:
            action = self._queue.get()
            try:
                action()
            except Exception:
                log.exception("background work failed", extra={"work": self._name})
            finally:
                self._queue.task_done()


def _at_once(action: Callable[[], None]) -> None:
    action()


class InitialReportAfterSync:
    """A FulfillmentStore that also asks for the full report whenever a SYNC marks the user linked."""

    def __init__(
        self,
        inner: FulfillmentStore,
        publisher: Callable[[], Publisher],
        topic: Callable[[], str],
        run: Callable[[Callable[[], None]], Any] = _at_once,
    ) -> None:
        """`run` runs the publish: at once by default, `Background(...).submit` so that SYNC does not wait."""
        self._inner = inner
        self._known = known_versions(inner)
        self._publisher = publisher
        self._topic = topic
        self._run = run

    def load(self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str]) -> Snapshot:
        return self._inner.load(token_hash, agent_user_id, device_ids)

    def list_devices(self, agent_user_id: str) -> list[tuple[str, DeviceDocument]]:
        return self._inner.list_devices(agent_user_id)

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        return self._inner.commit_states(agent_user_id, writes)

    # The inner store's KnownVersionStore reads (functions.core.ports), whole documents if it has none.

    def load_known(
        self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str], known: Mapping[str, Any]
    ) -> Snapshot:
        return self._known.load_known(token_hash, agent_user_id, device_ids, known)

    def list_known(self, agent_user_id: str, known: Mapping[str, Any]) -> list[tuple[str, StoredDevice]]:
        return self._known.list_known(agent_user_id, known)

    def commit_known(self, agent_user_id: str, writes: Sequence[StateWrite]) -> Mapping[str, Any] | None:
        return self._known.commit_known(agent_user_id, writes)

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        self._inner.mark_linked(agent_user_id, now_ms)
        data, attributes = report_all_data(agent_user_id, now_ms)
        self._run(lambda: self._publish(data, attributes))

    def _publish(self, data: bytes, attributes: Mapping[str, str]) -> None:
        try:
            self._publisher().publish(self._topic(), data, attributes)
        except Exception as problem:
            log.warning("the full report after SYNC could not be requested", extra={"reason": str(problem)[:300]})

    def disconnect(self, agent_user_id: str, now_ms: int, token_hash: str | None = None) -> int:
        return self._inner.disconnect(agent_user_id, now_ms, token_hash)
