"""The Report State pipeline: device states, proactive notifications and follow-up responses to HomeGraph.

Three ways in, one way out:
  * a state message on the state topic (`Reporter.handle`): a device cloud's new state, announcement or command
    result; the device's Firestore state is updated first (QUERY stays the truth);
  * a write to a device document that did not come from here (`Reporter.device_written`, called by the
    device-document trigger): EXECUTE, a device cloud writing Firestore directly, the operators' CLI;
  * a full report after a SYNC (`Reporter.handle_report_all`), once Google had time to process the SYNC.
Each of them queues an entry for the user (users/{agentUserId}/reportQueue/{entryId}) in the same atomic write
as the change itself, and then makes sure the entry reaches HomeGraph (`ensure_reported`).

Deduplication and order. What HomeGraph was last told is kept per device, outside the device document
(users/{u}/reported/{deviceId}, written by flushes only): a flush sends only the traits whose state differs from
it, so a sensor repeating its value costs no call, and our own state writes (which fire the device-document trigger
too) cost none either; they are marked by `reportSeq` so the trigger does not even queue them. A message observed
before the last one applied to its device (users/{u}/observed/{deviceId}, written by messages only) is not
applied. Keeping the two apart means that applying messages and flushing never contend for a document.

Coalescing, across function instances. One invocation at a time flushes a user's queue: the holder of the user's
lease (users/{u}/reportLease/current, taken with a compare-and-set write, `lease_ms` long). The flusher waits
until `window_ms` after its own entry was queued, reads the whole queue, reads those devices and what was last
reported for them, and sends one reportStateAndNotification for all of them (plus one per announcement: a request
carries one eventId), then records what HomeGraph now holds and deletes the entries it covered, in one batch. It
goes on flushing, without handing the lease over, while invocations of its own instance still wait. Every other
invocation of the user waits: within the instance on a condition, across instances by reading its entry (one read
answers for all the invocations of an instance), until its entry is gone, or takes the lease when it is free.
Within one instance only one invocation per user talks to Firestore about the lease at a time.

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

HomeGraph errors. 404: the user is marked unlinked (nothing more is reported until their next SYNC) and their
queue is dropped, except within `initial_report_delay_s` of a SYNC, when Google may simply not have processed it
yet (the full report after it follows). 400 (and 401/403): logged with the reason; a call that mixed devices is
retried device by device so that one bad device costs only its own report; what Google still refuses is dropped.
429, 5xx and timeouts: the client's bounded retries with backoff, then the lease is held for `retry_after_s` and
the invocation fails, so Pub/Sub redelivers. Messages older than `max_message_age_s` are dropped with a log line,
so that redelivery cannot go on for ever. Users who are not linked (DISCONNECT) get nothing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from functions.core.commands import PendingCommand
from functions.core.device import Device, parse_device
from functions.core.errors import InvalidDevice
from functions.core.homegraph import BadRequest, Forbidden, HomeGraph, NotFound, Transient
from functions.core.ports import DeviceDocument, StoredDevice
from functions.core.state_messages import InvalidMessage, ReportAllRequest, StateMessage
from functions.reporting import planning
from functions.reporting.planning import FOLLOW_UP, NOTIFICATION, Call, DeviceView, Event, QueueEntry

log = logging.getLogger(__name__)

# Outcomes (for logs and tests)
REPORTED = "reported"  # the change reached HomeGraph (or needed no call)
UNCHANGED = "unchanged"  # nothing new to report
STALE = "stale"  # observed before the last message applied to the device
NOT_LINKED = "not_linked"  # stored, but the user is not linked: Google gets nothing
TOO_OLD = "too_old"  # older than max_message_age_s: dropped
IGNORED = "ignored"  # not something to report (e.g. our own write seen by the trigger)
SUPERSEDED = "superseded"  # a report-all request that a later SYNC (or an earlier report) made unnecessary

REPORT_SEQ = "reportSeq"  # device-document field: counts the pipeline's own state writes (see module docstring)
MAX_APPLY_ATTEMPTS = 10
MAX_QUEUE_READ = 500
COVERED_MEMORY_S = 600.0
MAX_LOCAL_SLOTS = 10_000


class ReportDeferred(Exception):
    """The change is safely queued but could not be reported yet: fail the invocation so that it is redelivered."""


@dataclass(frozen=True)
class Settings:
    window_ms: int = 500
    wait_budget_s: float = 90.0  # how long an invocation waits for its entry to be reported (< function timeout)
    max_message_age_s: float = 3600.0
    initial_report_delay_s: float = 60.0  # after a SYNC (Home Assistant waits 60 s too, see README)
    lease_ms: int = 60_000  # > window + one call with all its retries
    poll_ms: int = 150  # how often a waiter looks at another instance's progress
    retry_after_s: float = 5.0  # a failing HomeGraph is left alone this long
    # After a call that needed retries, its devices are reported again this much later: an attempt that timed out
    # may still land at HomeGraph after a newer report (set to the client's timeout).
    resend_after_s: float = 10.0


@dataclass(frozen=True)
class UserRecord:
    linked: bool
    linked_at_ms: int = 0
    full_report_for_ms: int = 0  # the linkedAt whose full report is queued or done
    version: Any = None


@dataclass(frozen=True)
class Observed:
    """When the last message applied to a device was observed."""

    observed_at_ms: int = 0
    version: Any = None  # None: no document yet


@dataclass(frozen=True)
class ApplyRead:
    """Everything applying one change needs, read in one round trip."""

    user: UserRecord | None
    device: StoredDevice | None
    observed: Observed
    entry_exists: bool
    seen_events: frozenset[str] = frozenset()
    pending: PendingCommand | None = None
    pending_version: Any = None


@dataclass(frozen=True)
class ApplyWrite:
    """One atomic write; each part is conditional on what was read (versions), or the write fails as a whole."""

    device_id: str
    device_version: Any = None
    state: dict[str, Any] | None = None  # the device's new state (None: the device document is not written)
    online: bool | None = None
    report_seq: int = 0
    observed_version: Any = None
    observed_at_ms: int | None = None  # None: the observed document is not written
    entry: QueueEntry | None = None  # created (fails if it exists)
    seen_events: tuple[str, ...] = ()  # event ids recorded as announced (created; fail if they exist)
    completed_command: tuple[str, Any, str] | None = None  # (commandId, version read, entry id)


class ReportStore(Protocol):
    def read_for_apply(
        self,
        agent_user_id: str,
        device_id: str,
        entry_id: str,
        event_ids: Sequence[str],
        command_id: str | None,
    ) -> ApplyRead: ...

    def commit_apply(self, agent_user_id: str, write: ApplyWrite, now_ms: int) -> bool:
        """All of `write` or nothing; False if something read has changed since (nothing written)."""
        ...

    def user(self, agent_user_id: str) -> UserRecord | None: ...

    def entry_exists(self, agent_user_id: str, entry_id: str) -> bool: ...

    def queue(self, agent_user_id: str, limit: int) -> list[QueueEntry]: ...

    def flush_read(
        self, agent_user_id: str, device_ids: set[str] | None
    ) -> tuple[UserRecord | None, dict[str, tuple[DeviceDocument | None, dict[str, Any]]]]:
        """The user, and device documents (None if gone) with their last reported states (all of the user's
        devices for None), read together."""
        ...

    def commit_flush(
        self,
        agent_user_id: str,
        reported: Mapping[str, dict[str, Any]],
        done: Sequence[str],
        remaining_events: Mapping[str, tuple[Event, ...]],
        now_ms: int,
    ) -> None:
        """Records what HomeGraph now holds, deletes the entries covered, shortens the partly covered ones."""
        ...

    def queue_full_report(self, agent_user_id: str, entry: QueueEntry, user: UserRecord) -> bool:
        """Queues the full report and notes it on the user (`full_report_for_ms`); False if the user changed."""
        ...

    def mark_unlinked(self, agent_user_id: str, user: UserRecord, now_ms: int) -> bool:
        """Marks the user unlinked unless their record changed since it was read (a SYNC in between)."""
        ...

    def try_lease(self, agent_user_id: str, owner: str, now_ms: int, until_ms: int) -> int:
        """0 if `owner` now holds the user's lease until `until_ms`, else when the current holder's expires."""
        ...

    def peek(self, agent_user_id: str, entry_ids: Sequence[str], now_ms: int) -> tuple[set[str], int]:
        """(which of the entries are still queued, when the user's live lease expires or 0 if there is none)."""
        ...

    def release_lease(self, agent_user_id: str, owner: str) -> None: ...


class _Slot:
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


class _Local:
    """Per-process coordination: one invocation per user deals with the lease and flushes; the others wait here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}

    def slot(self, agent_user_id: str) -> _Slot:
        with self._lock:
            if len(self._slots) > MAX_LOCAL_SLOTS:
                # Users seen long ago: dropping an idle slot costs at most one extra lease attempt later.
                idle = [user for user, slot in self._slots.items() if not slot.leader and not slot.waiting]
                for user in idle[: len(idle) // 2]:
                    del self._slots[user]
            return self._slots.setdefault(agent_user_id, _Slot())


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class _FlushResult:
    covered: set[str]
    transient: Transient | None = None
    calls: int = 0
    seen: set[str] = field(default_factory=set)  # the entries the queue held when it was read
    read_at_ms: int = 0
    truncated: bool = False  # the queue held more than one read returns
    shaky: set[str] = field(default_factory=set)  # devices sent in a call that needed retries


class Reporter:
    def __init__(
        self,
        store: ReportStore,
        homegraph: Callable[[], HomeGraph],
        settings: Settings | None = None,
        *,
        clock_ms: Callable[[], int] = _now_ms,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self._store = store
        self._homegraph = homegraph  # built on first use
        self.settings = settings or Settings()
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._monotonic = monotonic
        self._new_id = new_id
        self._local = _Local()

    # Ways in

    def handle(self, message: StateMessage, message_id: str, published_ms: int) -> str:
        """Applies a state message and reports it; raises InvalidMessage (acknowledge) or ReportDeferred (retry)."""
        started = self._monotonic()
        delivered_after_ms = self._clock_ms() - published_ms
        fields = {"agentUserId": message.agent_user_id, "deviceId": message.device_id, "messageId": message_id}
        if self._too_old(published_ms, fields):
            return TOO_OLD
        entry_id = planning.stable_id("message", message_id)
        runcycle_id = planning.stable_id("runcycle", entry_id)
        # A state change announces a finished run once: a redelivered message finds the state already changed.
        event_ids = [message.event_id] if message.event_id else []
        for attempt in range(MAX_APPLY_ATTEMPTS):
            if attempt:
                self._sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))  # noqa: S311 - jitter
            now = self._clock_ms()
            entry: QueueEntry | None = None
            read = self._store.read_for_apply(
                message.agent_user_id, message.device_id, entry_id, event_ids, message.command_id
            )
            if read.pending is not None and read.pending.due_ms > now and read.pending.completed_by is None:
                # A virtual device completes no earlier than its configured delay.
                self._sleep(min((read.pending.due_ms - now) / 1000, self.settings.wait_budget_s))
                continue
            device = self._stored_device(message.device_id, read.device, fields)
            # Its state is outdated, but what it announces (a press, a command's result) still happened.
            stale = message.observed_at_ms < read.observed.observed_at_ms
            if stale:
                log.info("message observed before the last one applied: its state is not applied", extra=fields)
            after, ignored, problems = planning.state_changes(device, message.states, message.online)
            if problems:
                raise InvalidMessage("; ".join(problems))
            if ignored:
                log.warning(
                    "state keys that no trait of the device defines were ignored", extra={**fields, "keys": ignored}
                )
            if message.notifications:
                problems = planning.notification_problems(device, message.notifications)
                if problems:
                    raise InvalidMessage("; ".join(problems))
            changed = not stale and (after.state != device.state or after.online != device.online)
            linked = read.user is not None and read.user.linked
            events: list[Event] = []
            completed: tuple[str, Any, str] | None = None
            if linked:
                events = self._message_events(
                    message, device, after if changed else device, read, runcycle_id, now, fields
                )
                follow_up = self._follow_up(message, after, read, entry_id, now, fields)
                if follow_up is not None:
                    events.append(follow_up)
                    assert message.command_id is not None
                    completed = (message.command_id, read.pending_version, entry_id)
            elif changed or message.notifications or message.command_id:
                log.info("user not linked: the state is stored, Google gets nothing", extra=fields)
            wants_report = changed and device.will_report_state
            if linked and not read.entry_exists and (wants_report or events):
                entry = QueueEntry(entry_id, message.device_id, now, events=tuple(events))
            newer = message.observed_at_ms > read.observed.observed_at_ms
            if not (changed or newer or entry):
                outcome = STALE if stale else UNCHANGED
                break
            write = ApplyWrite(
                device_id=message.device_id,
                device_version=read.device.version if read.device else None,
                state=dict(after.state) if changed else None,
                online=after.online if after.online != device.online else None,
                report_seq=self._report_seq(read.device) + 1,
                observed_version=read.observed.version,
                observed_at_ms=message.observed_at_ms if newer else None,
                entry=entry,
                seen_events=tuple(e.event_id for e in events if e.event_id == message.event_id),
                completed_command=completed,
            )
            if self._store.commit_apply(message.agent_user_id, write, now):
                outcome = REPORTED if entry else (STALE if stale else UNCHANGED if linked else NOT_LINKED)
                break
        else:
            raise ReportDeferred("the device kept changing while the message was applied")
        applied = self._monotonic()
        if read.entry_exists or entry is not None:
            created = entry.created_ms if entry is not None else self._clock_ms()
            self.ensure_reported(message.agent_user_id, entry_id, created, queued=entry is not None)
            outcome = REPORTED
        timing = {
            "deliveredAfterMs": delivered_after_ms,
            "applyMs": round((applied - started) * 1000),
            "reportMs": round((self._monotonic() - applied) * 1000),
        }
        # Repeated values (the bulk of a sensor's messages) are logged at DEBUG only.
        log.log(
            logging.DEBUG if outcome == UNCHANGED else logging.INFO,
            "state message handled",
            extra={**fields, "outcome": outcome, **timing},
        )
        return outcome

    def device_written(
        self,
        agent_user_id: str,
        device_id: str,
        before: DeviceDocument | None,
        after: DeviceDocument | None,
        event_id: str,
        event_ms: int,
    ) -> str:
        """A device document was written (the trigger's before/after): reports a state or `online` change that
        did not come from this pipeline."""
        fields = {"agentUserId": agent_user_id, "deviceId": device_id, "eventId": event_id}
        if after is None or not _state_changed(before, after):
            return IGNORED
        if self._report_seq(after) > self._report_seq(before):
            return IGNORED  # our own write: queued when it was made
        if self._too_old(event_ms, fields):
            return TOO_OLD
        try:
            device = parse_device(device_id, after)
        except InvalidDevice as problem:
            log.error("invalid device document: not reported", extra={**fields, "reason": str(problem)})
            return IGNORED
        entry_id = planning.stable_id("write", event_id)
        runcycle_id = planning.stable_id("runcycle", entry_id)
        queued = False
        for _ in range(MAX_APPLY_ATTEMPTS):
            now = self._clock_ms()
            read = self._store.read_for_apply(agent_user_id, device_id, entry_id, [runcycle_id], None)
            if read.user is None or not read.user.linked:
                return NOT_LINKED
            if read.entry_exists:
                break
            events: list[Event] = []
            before_state = (before or {}).get("state") or {}
            completion = planning.completion_notifications(device, before_state, device.state)
            if completion and device.notifications_supported and runcycle_id not in read.seen_events:
                events.append(Event(runcycle_id, device_id, NOTIFICATION, completion, now))
            if not device.will_report_state and not events:
                return IGNORED
            entry = QueueEntry(entry_id, device_id, now, events=tuple(events))
            write = ApplyWrite(device_id, entry=entry, seen_events=tuple(e.event_id for e in events))
            if self._store.commit_apply(agent_user_id, write, now):
                queued = True
                break
        else:
            raise ReportDeferred("could not queue the device change")
        self.ensure_reported(agent_user_id, entry_id, self._clock_ms(), queued)
        log.info("device change reported", extra=fields)
        return REPORTED

    def handle_report_all(self, request: ReportAllRequest, message_id: str, published_ms: int) -> str:
        """The full report of a user's devices after a SYNC, once Google had time to process it."""
        fields = {"agentUserId": request.agent_user_id, "messageId": message_id}
        if self._too_old(published_ms, fields):
            return TOO_OLD
        due_ms = request.linked_at_ms + int(self.settings.initial_report_delay_s * 1000)
        wait_s = (due_ms - self._clock_ms()) / 1000
        if wait_s > 0:
            if wait_s > self.settings.wait_budget_s:
                raise ReportDeferred("the full report after the SYNC is not due yet")
            self._sleep(wait_s)
        entry_id = planning.stable_id("message", message_id)
        user = self._store.user(request.agent_user_id)
        if user is None or not user.linked:
            return NOT_LINKED
        if user.linked_at_ms > request.linked_at_ms:
            log.info("full report superseded by a later SYNC", extra=fields)
            return SUPERSEDED
        queued = False
        if user.full_report_for_ms >= request.linked_at_ms:
            if not self._store.entry_exists(request.agent_user_id, entry_id):
                return SUPERSEDED  # reported already (this is a redelivery)
        else:
            entry = QueueEntry(entry_id, None, self._clock_ms(), full=True)
            if not self._store.queue_full_report(request.agent_user_id, entry, user):
                raise ReportDeferred("the user changed while the full report was queued")
            queued = True
        self.ensure_reported(request.agent_user_id, entry_id, self._clock_ms(), queued)
        log.info("full report after SYNC", extra=fields)
        return REPORTED

    # Coordination

    def ensure_reported(self, agent_user_id: str, entry_id: str, created_ms: int, queued: bool = False) -> None:
        """Returns once the entry has been flushed (by this invocation or another); ReportDeferred otherwise.
        `queued`: the caller has just queued the entry (no need to look whether it is still there)."""
        deadline = self._monotonic() + self.settings.wait_budget_s
        slot = self._local.slot(agent_user_id)
        while True:
            with slot.changed:
                while slot.leader and entry_id not in slot.covered:
                    slot.waiting.setdefault(entry_id, (created_ms, self._clock_ms()))
                    remaining = deadline - self._monotonic()
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
                    slot.add_covered(covered, self._monotonic())
                    slot.leader = False
                    slot.changed.notify_all()
            if shaky:
                self._resend(agent_user_id, shaky, deadline)
            if entry_id in covered:
                return
            queued = False

    def _resend(self, agent_user_id: str, device_ids: set[str], deadline: float) -> None:
        """Reports the devices again, in full, once a late landing of a timed-out attempt would have landed."""
        wait_s = min(self.settings.resend_after_s, deadline - self._monotonic() - 1)
        if wait_s < 0:
            return
        self._sleep(wait_s)
        now = self._clock_ms()
        batch = self._new_id()
        entries = [
            QueueEntry(planning.stable_id("resend", batch, device_id), device_id, now, full=True)
            for device_id in sorted(device_ids)
        ]
        try:
            for entry in entries:
                self._store.commit_apply(agent_user_id, ApplyWrite(entry.device_id or "", entry=entry), now)
            # The first entry's flush reports them all; the others find theirs covered.
            for entry in entries:
                self.ensure_reported(agent_user_id, entry.entry_id, now - self.settings.window_ms, queued=True)
        except ReportDeferred as deferred:
            # Queued all the same: the user's next flush sends them.
            log.warning("devices not reported again yet", extra={"agentUserId": agent_user_id, "reason": str(deferred)})
        log.info("reported again after retries", extra={"agentUserId": agent_user_id, "devices": len(entries)})

    def _lead(
        self, agent_user_id: str, entry_id: str, created_ms: int, deadline: float, queued: bool
    ) -> tuple[set[str], set[str]]:
        """This invocation speaks for the instance: until its entry is covered, flush when the lease is free.
        Returns the entries covered and the devices to report again (see `_resend`)."""
        owner = self._new_id()
        slot = self._local.slot(agent_user_id)
        look = not queued
        while True:
            now = self._clock_ms()
            holder_until = 0
            if look:
                # One read answers for every invocation of the user waiting in this instance.
                with slot.changed:
                    ids = [entry_id, *(e for e in slot.waiting if e not in slot.covered and e != entry_id)]
                still_queued, holder_until = self._store.peek(agent_user_id, ids, now)
                gone = set(ids) - still_queued
                if gone:
                    with slot.changed:
                        slot.add_covered(gone, self._monotonic())
                        slot.changed.notify_all()
                if entry_id in gone:
                    return gone, set()
            look = True
            if holder_until == 0:
                holder_until = self._store.try_lease(agent_user_id, owner, now, now + self.settings.lease_ms)
                if holder_until == 0:
                    return self._flush_as_owner(agent_user_id, owner, created_ms, deadline)
            if self._monotonic() >= deadline:
                raise ReportDeferred("another invocation holds the user's lease")
            wait_ms = max(10, min(self.settings.poll_ms, holder_until - now + 5))
            self._sleep(min(wait_ms / 1000, max(0.0, deadline - self._monotonic())))

    def _flush_as_owner(
        self, agent_user_id: str, owner: str, created_ms: int, deadline: float
    ) -> tuple[set[str], set[str]]:
        """Flushes the user's queue, and again for as long as invocations of this instance wait for theirs (up to
        the wait budget): they need no lease of their own, and no handover costs a window."""
        slot = self._local.slot(agent_user_id)
        covered: set[str] = set()
        shaky: set[str] = set()
        released = False
        lease_until = self._clock_ms() + self.settings.lease_ms
        due_ms = created_ms + self.settings.window_ms
        try:
            while True:
                wait_ms = due_ms - self._clock_ms()
                if wait_ms > 0:
                    self._sleep(min(wait_ms, self.settings.window_ms) / 1000)
                now = self._clock_ms()
                if lease_until - now < self.settings.lease_ms // 2:
                    if self._store.try_lease(agent_user_id, owner, now, now + self.settings.lease_ms) != 0:
                        break  # the lease went to another instance (this one was too slow): it carries on
                    lease_until = now + self.settings.lease_ms
                result = self.flush(agent_user_id, owner)
                shaky |= result.shaky
                if result.transient is not None:
                    # Keep the lease a while: the other invocations of the user leave a failing HomeGraph alone.
                    now = self._clock_ms()
                    self._store.try_lease(agent_user_id, owner, now, now + int(self.settings.retry_after_s * 1000))
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
                    slot.add_covered(done, self._monotonic())
                    slot.changed.notify_all()
                    pending = [queued_at for e, (queued_at, _) in slot.waiting.items() if e not in slot.covered]
                if not pending or self._monotonic() >= deadline:
                    return covered, shaky
                due_ms = min(pending) + self.settings.window_ms
            return covered, shaky
        finally:
            if not released:
                self._store.release_lease(agent_user_id, owner)

    # Flushing

    def flush(self, agent_user_id: str, owner: str | None = None) -> _FlushResult:
        """Reports the user's queue (the caller holds the lease as `owner`, renewed before every further call)."""
        started = self._monotonic()
        read_at_ms = self._clock_ms()
        entries = self._store.queue(agent_user_id, MAX_QUEUE_READ)
        seen = {entry.entry_id for entry in entries}
        truncated = len(entries) >= MAX_QUEUE_READ
        if not entries:
            return _FlushResult(set(), read_at_ms=read_at_ms)
        now = self._clock_ms()
        user, raw = self._store.flush_read(agent_user_id, planning.device_ids_of(entries))
        every_id = [entry.entry_id for entry in entries]
        if user is None or not user.linked:
            self._store.commit_flush(agent_user_id, {}, every_id, {}, now)
            log.info("user not linked: queued reports dropped", extra={"agentUserId": agent_user_id})
            return _FlushResult(set(every_id), seen=seen, read_at_ms=read_at_ms, truncated=truncated)
        views: dict[str, DeviceView] = {}
        for device_id, (document, reported) in raw.items():
            views[device_id] = DeviceView(self._parse_quietly(agent_user_id, device_id, document), reported)
        calls, dropped = planning.plan(entries, views, now, self._new_id)
        for event, reason in dropped:
            log.warning(
                "announcement not sent",
                extra={"agentUserId": agent_user_id, "deviceId": event.device_id, "kind": event.kind, "reason": reason},
            )

        now_reported: dict[str, dict[str, Any]] = {}
        settled: set[str] = {event.event_id for event, _ in dropped}  # events sent or given up
        unsent: list[Call] = []
        shaky: set[str] = set()
        todo = deque(calls)
        made = 0
        transient: Transient | None = None
        while todo:
            call = todo.popleft()
            body = call.body(agent_user_id)
            if made and owner is not None:
                now = self._clock_ms()
                if self._store.try_lease(agent_user_id, owner, now, now + self.settings.lease_ms) != 0:
                    transient = Transient("reportStateAndNotification", None, "the user's lease was lost")
                    unsent = [call, *todo]
                    break
            made += 1
            try:
                answer = self._homegraph().report_state_and_notification(body)
            except NotFound:
                if self._clock_ms() - user.linked_at_ms < self.settings.initial_report_delay_s * 1000:
                    log.warning(
                        "HomeGraph does not know the user or device yet (SYNC in progress); dropped",
                        extra=_call_fields(agent_user_id, call),
                    )
                    settled |= {call.event.event_id} if call.event else set()
                    continue
                unlinked = self._store.mark_unlinked(agent_user_id, user, self._clock_ms())
                log.warning(
                    "HomeGraph does not know the user: marked unlinked, nothing is reported until their next SYNC",
                    extra={**_call_fields(agent_user_id, call), "marked": unlinked},
                )
                self._store.commit_flush(agent_user_id, {}, every_id, {}, self._clock_ms())
                return _FlushResult(set(every_id), None, made, seen, read_at_ms, truncated)
            except (BadRequest, Forbidden) as refused:
                if len(call.states) + (1 if call.event else 0) > 1:
                    todo.extendleft(reversed(planning.split(call, self._new_id)))
                    continue
                log.error(
                    "HomeGraph refused the report; dropped",
                    extra={
                        **_call_fields(agent_user_id, call),
                        "status": refused.status,
                        "reason": refused.reason,
                        "body": _loggable(body),
                    },
                )
                settled |= {call.event.event_id} if call.event else set()
                if isinstance(refused, BadRequest):
                    # Given up for good: not sent again unless the state changes (403 is a setup problem; once
                    # fixed, the next report of the device carries the state again).
                    self._note_reported(now_reported, views, call)
                continue
            except Transient as failure:
                transient = failure
                unsent = [call, *todo]
                break
            self._note_reported(now_reported, views, call)
            if answer.attempts > 1:
                shaky |= set(call.states)
            if call.event is not None:
                settled.add(call.event.event_id)
            log.info("reported", extra=_call_fields(agent_user_id, call))

        unsent_devices = {device_id for call in unsent for device_id in call.states}
        done: list[str] = []
        remaining: dict[str, tuple[Event, ...]] = {}
        for entry in entries:
            left = tuple(event for event in entry.events if event.event_id not in settled)
            states_pending = (entry.device_id is None and bool(unsent_devices)) or entry.device_id in unsent_devices
            if not left and not states_pending:
                done.append(entry.entry_id)
            elif len(left) < len(entry.events):
                remaining[entry.entry_id] = left
        self._store.commit_flush(agent_user_id, now_reported, done, remaining, self._clock_ms())
        log.info(
            "flushed",
            extra={
                "agentUserId": agent_user_id,
                "entries": len(entries),
                "covered": len(done),
                "calls": made,
                "flushMs": round((self._monotonic() - started) * 1000),
            },
        )
        return _FlushResult(set(done), transient, made, seen, read_at_ms, truncated, shaky)

    @staticmethod
    def _note_reported(now_reported: dict[str, dict[str, Any]], views: Mapping[str, DeviceView], call: Call) -> None:
        for device_id, states in call.states.items():
            device = views[device_id].device
            assert device is not None
            base = now_reported.get(device_id, views[device_id].reported)
            now_reported[device_id] = planning.reported_after(device, base, states)

    # Helpers

    def _too_old(self, published_ms: int, fields: Mapping[str, Any]) -> bool:
        age_s = (self._clock_ms() - published_ms) / 1000
        if age_s > self.settings.max_message_age_s:
            log.warning(
                "message older than the maximum age: dropped",
                extra={**fields, "ageS": round(age_s, 1), "maxAgeS": self.settings.max_message_age_s},
            )
            return True
        return False

    @staticmethod
    def _report_seq(document: DeviceDocument | StoredDevice | None) -> int:
        if isinstance(document, StoredDevice):
            document = document.document
        value = (document or {}).get(REPORT_SEQ)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @staticmethod
    def _stored_device(device_id: str, stored: StoredDevice | None, fields: Mapping[str, Any]) -> Device:
        if stored is None:
            raise InvalidMessage(f"no device {device_id!r} for this user")
        try:
            return parse_device(device_id, stored.document)
        except InvalidDevice as problem:
            log.error("the stored device is invalid", extra={**fields, "reason": str(problem)})
            raise InvalidMessage(f"the stored device {device_id!r} is invalid") from problem

    @staticmethod
    def _parse_quietly(agent_user_id: str, device_id: str, document: DeviceDocument | None) -> Device | None:
        if document is None:
            return None
        try:
            return parse_device(device_id, document)
        except InvalidDevice as problem:
            log.error(
                "invalid device document: not reported",
                extra={"agentUserId": agent_user_id, "deviceId": device_id, "reason": str(problem)},
            )
            return None

    def _message_events(
        self,
        message: StateMessage,
        device: Device,
        after: Device,
        read: ApplyRead,
        runcycle_id: str,
        now: int,
        fields: Mapping[str, Any],
    ) -> list[Event]:
        events: list[Event] = []
        if message.notifications:
            assert message.event_id is not None
            if not device.notifications_supported:
                log.info("device does not declare notificationSupportedByAgent: notification not sent", extra=fields)
            elif message.event_id in read.seen_events:
                log.info("event announced before: not announced again", extra={**fields, "event": message.event_id})
            else:
                events.append(Event(message.event_id, device.id, NOTIFICATION, dict(message.notifications), now))
        if device.notifications_supported and "RunCycle" not in message.notifications:
            completion = planning.completion_notifications(device, device.state, after.state)
            if completion:
                events.append(Event(runcycle_id, device.id, NOTIFICATION, completion, now))
        return events

    def _follow_up(
        self, message: StateMessage, after: Device, read: ApplyRead, entry_id: str, now: int, fields: Mapping[str, Any]
    ) -> Event | None:
        if message.command_id is None:
            return None
        pending = read.pending
        extra = {**fields, "commandId": message.command_id}
        if pending is None or pending.device_id != message.device_id:
            log.warning("no pending command with this commandId for the device: no follow-up", extra=extra)
            return None
        if pending.completed_by is not None:
            if pending.completed_by != entry_id:
                log.info("the command's follow-up was already sent: not sent again", extra=extra)
            return None
        if pending.expires_ms <= now:
            log.warning("the follow-up token expired: no follow-up sent", extra=extra)
            return None
        payload = planning.follow_up_notifications(
            pending.command, pending.token, pending.params, after.state, message.error_code
        )
        if payload is None:
            log.warning("the command has no follow-up response", extra=extra)
            return None
        event_id = planning.stable_id("followup", message.command_id)
        return Event(event_id, message.device_id, FOLLOW_UP, payload, now, expires_ms=pending.expires_ms)


def _state_changed(before: DeviceDocument | None, after: DeviceDocument) -> bool:
    if before is None:
        return False  # a new device: the full report after its SYNC covers it
    return bool(
        (before.get("state") or {}) != (after.get("state") or {})
        or before.get("online", True) != after.get("online", True)
    )


def _call_fields(agent_user_id: str, call: Call) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "agentUserId": agent_user_id,
        "requestId": call.request_id,
        "devices": len(call.states),
    }
    if call.event is not None:
        fields.update(eventKind=call.event.kind, eventDevice=call.event.device_id)
    return fields


def _loggable(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request body without follow-up tokens (Google's, but never logged)."""
    payload = body.get("payload") or {}
    devices = dict(payload.get("devices") or {})
    notifications = devices.get("notifications")
    if isinstance(notifications, Mapping):
        devices["notifications"] = {
            device_id: {
                trait: (
                    {
                        **value,
                        "followUpResponse": {
                            k: v for k, v in value["followUpResponse"].items() if k != "followUpToken"
                        },
                    }
                    if isinstance(value, Mapping) and isinstance(value.get("followUpResponse"), Mapping)
                    else value
                )
                for trait, value in (by_trait or {}).items()
            }
            for device_id, by_trait in notifications.items()
        }
    return {**body, "payload": {**payload, "devices": devices}}
