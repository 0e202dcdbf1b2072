"""What the Report State pipeline works with: its settings, its outcomes, what applying a change reads and writes,
and the port to its storage (`ReportStore`: functions.reporting.store on Firestore, tests/fakes in memory).

Deduplication and order. What HomeGraph was last told is kept per device, outside the device document
(users/{u}/reported/{deviceId}, written by flushes only): a flush sends only the traits whose state differs from
it, so a sensor repeating its value costs no call, and our own state writes (which fire the device-document trigger
too) cost none either; they are marked by `reportSeq` so the trigger does not even queue them. A message observed
before the last one applied to its device (users/{u}/observed/{deviceId}, written by messages only) is not
applied. Keeping the two apart means that applying messages and flushing never contend for a document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from functions.core.commands import PendingCommand
from functions.core.ports import DeviceDocument, StoredDevice
from functions.reporting.planning import Event, QueueEntry

# Outcomes (for logs and tests)
REPORTED = "reported"  # the change reached HomeGraph (or needed no call)
UNCHANGED = "unchanged"  # nothing new to report
STALE = "stale"  # observed before the last message applied to the device
NOT_LINKED = "not_linked"  # stored, but the user is not linked: Google gets nothing
TOO_OLD = "too_old"  # older than max_message_age_s: dropped
IGNORED = "ignored"  # not something to report (e.g. our own write seen by the trigger)
SUPERSEDED = "superseded"  # a report-all request that a later SYNC (or an earlier report) made unnecessary

REPORT_SEQ = "reportSeq"  # device-document field: counts the pipeline's own state writes (see module docstring)


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

    # the timeout sweep (functions/reporting/timeouts.py)

    def overdue_pending(self, now_ms: int, limit: int) -> list[tuple[PendingCommand, Any]]:
        """Pending commands whose give-up time is `now_ms` or earlier, with their versions: those nobody completed,
        and those given up whose FAILURE follow-up is still queued (`completed_by` names its entry)."""
        ...

    def give_up_pending(self, pending: PendingCommand, version: Any, entry: QueueEntry | None, now_ms: int) -> bool:
        """Marks the command completed by its giving up (and queues `entry`, its FAILURE follow-up), unless it
        changed since it was read (its result came meanwhile): then False, and nothing is written."""
        ...
