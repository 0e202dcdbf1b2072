"""Making sure a queued entry reaches HomeGraph: flush under the user's lease, or wait for whoever flushes.

Coalescing, across function instances. One invocation at a time flushes a user's queue: the holder of the user's
lease (users/{u}/reportLease/current, taken with a compare-and-set write, `lease_ms` long). The flusher waits
until `window_ms` after its own entry was queued and flushes (functions.reporting.flusher). It goes on flushing,
without handing the lease over, while invocations of its own instance still wait. Every other invocation of the
user waits: within the instance on a condition (functions.reporting.coordination), across instances by reading
its entry (one read answers for all the invocations of an instance), until its entry is gone, or takes the lease
when it is free.

Why nothing is lost. An invocation returns (and Pub/Sub or Eventarc acknowledges its message) only once its own
entry has been reported or deliberately dropped (logged). An invocation that dies leaves its entry queued and its
message unacknowledged: the next flush of the user covers the entry, and the redelivered message finds its entry
(same id, derived from the message id) or finds it covered. A flusher that dies loses its lease at its expiry, and
the waiting invocations (or the redeliveries) take over.

Window and trade-off (REPORT_WINDOW_MS, default 500 ms). A state change reaches HomeGraph `window_ms` plus one
call after it was queued (plus up to one more flush when it arrives while one is in flight); in exchange, every
change of a user within the window, typically a whole scene of a dozen devices, costs one call, which is what
keeps a project under HomeGraph's 6,000 calls a minute. A longer window saves calls on sustained streams but
delays every report; a shorter one reports faster but coalesces less. Waiting costs instance time, not calls:
with the function's concurrency well above 1, waiting invocations share instances. Measured (bench/report_state.py,
README): 10,000 messages of 100 users in 60 s cost 0.078 calls per message, p95 1.1 s from publish to HomeGraph.

When HomeGraph keeps failing (429, 5xx, timeouts after the client's retries), the flusher holds the lease for
`retry_after_s`, so that the user's other invocations leave HomeGraph alone, and the invocation fails (redelivered).
"""

from __future__ import annotations

import logging

from functions.reporting import planning
from functions.reporting.coordination import InstanceSlots
from functions.reporting.flusher import Flusher
from functions.reporting.model import ApplyWrite, ReportDeferred
from functions.reporting.planning import QueueEntry
from functions.reporting.runtime import Runtime

log = logging.getLogger(__name__)


class Coalescer:
    """Coalesces the reports of a user's invocations into as few flushes as the window allows."""

    def __init__(self, runtime: Runtime, flusher: Flusher) -> None:
        self._rt = runtime
        self._flusher = flusher
        self._local = InstanceSlots()

    def ensure_reported(self, agent_user_id: str, entry_id: str, created_ms: int, queued: bool = False) -> None:
        """Returns once the entry has been flushed (by this invocation or another); ReportDeferred otherwise.
        `queued`: the caller has just queued the entry (no need to look whether it is still there)."""
        rt = self._rt
        deadline = rt.monotonic() + rt.settings.wait_budget_s
        slot = self._local.slot(agent_user_id)
        while True:
            with slot.changed:
                while slot.leader and entry_id not in slot.covered:
                    slot.waiting.setdefault(entry_id, (created_ms, rt.clock_ms()))
                    remaining = deadline - rt.monotonic()
                    if remaining <= 0:
                        slot.waiting.pop(entry_id, None)
                        raise ReportDeferred("waited too long for the user's report")
                    slot.changed.wait(remaining)
                    queued = False  # others may have flushed meanwhile
                slot.waiting.pop(entry_id, None)
                if entry_id in slot.covered:
                    return
                slot.leader = True
            covered: set[str] = set()
            shaky: set[str] = set()
            try:
                covered, shaky = self._lead(agent_user_id, entry_id, created_ms, deadline, queued)
            finally:
                with slot.changed:
                    slot.add_covered(covered, rt.monotonic())
                    slot.leader = False
                    slot.changed.notify_all()
            if shaky:
                self._resend(agent_user_id, shaky, deadline)
            if entry_id in covered:
                return
            queued = False

    def _resend(self, agent_user_id: str, device_ids: set[str], deadline: float) -> None:
        """Reports the devices again, in full, once a late landing of a timed-out attempt would have landed."""
        rt = self._rt
        wait_s = min(rt.settings.resend_after_s, deadline - rt.monotonic() - 1)
        if wait_s < 0:
            return
        rt.sleep(wait_s)
        now = rt.clock_ms()
        batch = rt.new_id()
        entries = [
            QueueEntry(planning.stable_id("resend", batch, device_id), device_id, now, full=True)
            for device_id in sorted(device_ids)
        ]
        try:
            for entry in entries:
                rt.store.commit_apply(agent_user_id, ApplyWrite(entry.device_id or "", entry=entry), now)
            # The first entry's flush reports them all; the others find theirs covered.
            for entry in entries:
                self.ensure_reported(agent_user_id, entry.entry_id, now - rt.settings.window_ms, queued=True)
        except ReportDeferred as deferred:
            # Queued all the same: the user's next flush sends them.
            log.warning("devices not reported again yet", extra={"agentUserId": agent_user_id, "reason": str(deferred)})
        log.info("reported again after retries", extra={"agentUserId": agent_user_id, "devices": len(entries)})

    def _lead(
        self, agent_user_id: str, entry_id: str, created_ms: int, deadline: float, queued: bool
    ) -> tuple[set[str], set[str]]:
        """This invocation speaks for the instance: until its entry is covered, flush when the lease is free.
        Returns the entries covered and the devices to report again (see `_resend`)."""
        rt = self._rt
        owner = rt.new_id()
        slot = self._local.slot(agent_user_id)
        look = not queued
        while True:
            now = rt.clock_ms()
            holder_until = 0
            if look:
                # One read answers for every invocation of the user waiting in this instance.
                with slot.changed:
                    ids = [entry_id, *(e for e in slot.waiting if e not in slot.covered and e != entry_id)]
                still_queued, holder_until = rt.store.peek(agent_user_id, ids, now)
                gone = set(ids) - still_queued
                if gone:
                    with slot.changed:
                        slot.add_covered(gone, rt.monotonic())
                        slot.changed.notify_all()
                if entry_id in gone:
                    return gone, set()
            look = True
            if holder_until == 0:
                holder_until = rt.store.try_lease(agent_user_id, owner, now, now + rt.settings.lease_ms)
                if holder_until == 0:
                    return self._flush_as_owner(agent_user_id, owner, created_ms, deadline)
            if rt.monotonic() >= deadline:
                raise ReportDeferred("another invocation holds the user's lease")
            wait_ms = max(10, min(rt.settings.poll_ms, holder_until - now + 5))
            rt.sleep(min(wait_ms / 1000, max(0.0, deadline - rt.monotonic())))

    def _flush_as_owner(
        self, agent_user_id: str, owner: str, created_ms: int, deadline: float
    ) -> tuple[set[str], set[str]]:
        """Flushes the user's queue, and again for as long as invocations of this instance wait for theirs (up to
        the wait budget): they need no lease of their own, and no handover costs a window."""
        rt = self._rt
        slot = self._local.slot(agent_user_id)
        covered: set[str] = set()
        shaky: set[str] = set()
        released = False
        lease_until = rt.clock_ms() + rt.settings.lease_ms
        due_ms = created_ms + rt.settings.window_ms
        try:
            while True:
                wait_ms = due_ms - rt.clock_ms()
                if wait_ms > 0:
                    rt.sleep(min(wait_ms, rt.settings.window_ms) / 1000)
                now = rt.clock_ms()
                if lease_until - now < rt.settings.lease_ms // 2:
                    if rt.store.try_lease(agent_user_id, owner, now, now + rt.settings.lease_ms) != 0:
                        break  # the lease went to another instance (this one was too slow): it carries on
                    lease_until = now + rt.settings.lease_ms
                result = self._flusher.flush(agent_user_id, owner)
                shaky |= result.shaky
                if result.transient is not None:
                    # Keep the lease a while: the other invocations of the user leave a failing HomeGraph alone.
                    now = rt.clock_ms()
                    rt.store.try_lease(agent_user_id, owner, now, now + int(rt.settings.retry_after_s * 1000))
                    released = True
                    raise ReportDeferred(f"HomeGraph is unavailable: {result.transient}") from result.transient
                with slot.changed:
                    done = set(result.covered)
                    if not result.truncated:
                        # Local waiters whose entry was queued before the queue was read and was not in it: gone,
                        # reported by another flush.
                        done |= {
                            e
                            for e, (_, since) in slot.waiting.items()
                            if since < result.read_at_ms and e not in result.seen
                        }
                    covered |= done
                    slot.add_covered(done, rt.monotonic())
                    slot.changed.notify_all()
                    pending = [queued_at for e, (queued_at, _) in slot.waiting.items() if e not in slot.covered]
                if not pending or rt.monotonic() >= deadline:
                    return covered, shaky
                due_ms = min(pending) + rt.settings.window_ms
            return covered, shaky
        finally:
            if not released:
                rt.store.release_lease(agent_user_id, owner)
