"""In-memory Request Sync ledger and HomeGraph, for unit tests (no I/O)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from functions.core.homegraph import HomeGraphError, Ok
from functions.request_sync.service import COMMIT_TIME, Ledger, Plan, Step


class MemorySyncLedger:
    """Each `transact` runs under one lock, so transactions are serial; commit times strictly increase.

    Like the Firestore ledger's compare-and-set, a step that writes a ledger written while it ran (only a nested
    `transact` can, under the re-entrant lock) is run again on what is there now."""

    def __init__(self, commit_clock_us: Callable[[], int] | None = None) -> None:
        self.ledgers: dict[str, Ledger] = {}
        self.linked: dict[str, bool] = {}
        self.unlinked: list[str] = []  # users marked unlinked by a 404, in order
        self._clock = commit_clock_us or (lambda: time.time_ns() // 1000)
        self._last_us = 0
        self._writes: dict[str, int] = {}  # ledger writes per user: the compare-and-set's version
        self._lock = threading.RLock()

    def commit_time_us(self) -> int:
        """A fresh commit time (also what a device write committing now would get)."""
        with self._lock:
            self._last_us = max(self._last_us + 1, self._clock())
            return self._last_us

    def transact(self, agent_user_id: str, step: Step) -> tuple[Plan, int]:
        with self._lock:
            while True:
                version = self._writes.get(agent_user_id, 0)
                ledger = self.ledgers.get(agent_user_id, Ledger())
                written, plan = step(ledger, self.linked.get(agent_user_id, False))
                if written is None or self._writes.get(agent_user_id, 0) == version:
                    break  # nothing to write, or nothing written meanwhile
            issued_at_us = 0
            if written is not None:
                if written.issued_at_us == COMMIT_TIME:
                    issued_at_us = self.commit_time_us()
                    written = replace(written, issued_at_us=issued_at_us)
                self.ledgers[agent_user_id] = written
                self._writes[agent_user_id] = version + 1
            if plan.unlink:
                self.linked[agent_user_id] = False
                self.unlinked.append(agent_user_id)
            return plan, issued_at_us


class ScriptedHomeGraph:
    """Answers requestSync from a script of outcomes (Ok by default) and records every call with its time."""

    def __init__(self, clock_us: Callable[[], int], script: Mapping[int, HomeGraphError] | None = None) -> None:
        self.calls: list[tuple[str, int]] = []  # (agentUserId, when the call was made)
        self.reports: list[dict[str, Any]] = []
        self._clock_us = clock_us
        self._script = dict(script or {})  # call number (0-based) -> error raised instead of Ok
        self._lock = threading.Lock()

    def request_sync(self, agent_user_id: str) -> Ok:
        with self._lock:
            number = len(self.calls)
            self.calls.append((agent_user_id, self._clock_us()))
        failure = self._script.get(number)
        if failure is not None:
            raise failure
        return Ok({})

    def report_state_and_notification(self, body: Mapping[str, Any]) -> Ok:
        with self._lock:
            self.reports.append(dict(body))
        return Ok({"requestId": body.get("requestId", "")})

    def query(self, agent_user_id: str, device_ids: Sequence[str], request_id: str | None = None) -> Ok:
        """Every device is known, with no state reported (requestSync is what these tests are about)."""
        return Ok({"requestId": request_id or "", "payload": {"devices": {device_id: {} for device_id in device_ids}}})
