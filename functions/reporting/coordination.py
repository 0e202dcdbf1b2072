"""Coordination within one function instance: its invocations of one user share the user's flushes.

Per user, one invocation at a time (the slot's leader) talks to Firestore about the user's lease and flushes; the
other invocations of the instance wait on the slot's condition until their entry is covered (reported by this
instance's flushes, or found gone from the queue), or take the lead when the leader is done. So within one
instance only one invocation per user talks to Firestore about the lease at a time (functions.reporting.lease).
"""

from __future__ import annotations

import threading

COVERED_MEMORY_S = 600.0
MAX_LOCAL_SLOTS = 10_000


class UserSlot:
    """One user's coordination within this process."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.leader = False
        self.covered: dict[str, float] = {}  # entry ids known to be reported (monotonic time noted)
        # Entry ids of invocations waiting here -> (when the entry was queued, when the wait began; instance clock).
        self.waiting: dict[str, tuple[int, int]] = {}

    def add_covered(self, entry_ids: set[str], now: float) -> None:
        for entry_id in entry_ids:
            self.covered[entry_id] = now
            self.waiting.pop(entry_id, None)
        if len(self.covered) > 1000:
            self.covered = {k: t for k, t in self.covered.items() if now - t < COVERED_MEMORY_S}


class InstanceSlots:
    """Per-process coordination: one invocation per user deals with the lease and flushes; the others wait here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, UserSlot] = {}

    def slot(self, agent_user_id: str) -> UserSlot:
        with self._lock:
            if len(self._slots) > MAX_LOCAL_SLOTS:
                # Users seen long ago: dropping an idle slot costs at most one extra lease attempt later.
                idle = [user for user, slot in self._slots.items() if not slot.leader and not slot.waiting]
                for user in idle[: len(idle) // 2]:
                    del self._slots[user]
            return self._slots.setdefault(agent_user_id, UserSlot())
