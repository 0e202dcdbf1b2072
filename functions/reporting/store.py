"""Firestore side of Report State, proactive notifications and follow-ups.

Layout (all per user, beside the device documents; none of it is ever sent to Google):
    users/{u}                              linked, linkedAt, unlinkedAt; fullReportFor (epoch ms: the SYNC whose
                                           full report is queued or done), unlinkedBy ("homegraph-404")
    users/{u}/devices/{d}                  the device; `state`, `online`, and reportSeq (our own state writes)
    users/{u}/reported/{d}                 states (what HomeGraph holds), reportedAt: written by flushes only
    users/{u}/observed/{d}                 observedAt (ms of the last message applied): written by messages only
    users/{u}/reportQueue/{entryId}        deviceId (null: all devices), createdAt (ms), full, events, expireAt
    users/{u}/reportLease/current          owner, until (ms)
    users/{u}/announced/{id(eventId)}      eventId, at, expireAt: events announced (never twice)
    users/{u}/followUps/{commandId}        the pending command: deviceId, command, params, followUpToken,
                                           createdAt, expiresAtMs, expiresAt, backend, dueAt, completedBy;
                                           giveUpAt (ms) while nobody completed it: the sweep of overdue
                                           commands queries it across users (a collection-group index);
                                           givenUpAt (ms) once the sweep gave it up
TTL policies (infra) on reportQueue.expireAt, announced.expireAt and followUps.expiresAt remove what is left.

Every conditional write uses the document's update time as its precondition (no locking transactions): a write
that lost a race fails as a whole and the domain reads again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from functions.core.commands import GIVE_UP_AT, GIVEN_UP, PendingCommand
from functions.core.ports import DeviceDocument, StoredDevice
from functions.platform.firestore import DEVICES, USERS, client, to_datetime, to_ms
from functions.reporting import planning
from functions.reporting.model import REPORT_SEQ, ApplyRead, ApplyWrite, Observed, UserRecord
from functions.reporting.planning import Event, QueueEntry

REPORTED = "reported"
OBSERVED = "observed"
QUEUE = "reportQueue"
LEASE = "reportLease"
LEASE_DOCUMENT = "current"
ANNOUNCED = "announced"
FOLLOW_UPS = "followUps"
BATCH_LIMIT = 500
QUEUE_TTL = dt.timedelta(days=7)
ANNOUNCED_TTL = dt.timedelta(days=2)
# A lost compare-and-set says nothing of the winner's lease: look again this much later.
LEASE_RACE_MS = 30
_CONFLICTS = (
    google_errors.FailedPrecondition,
    google_errors.Aborted,
    google_errors.AlreadyExists,
    google_errors.NotFound,
)
# What a flush writes: a reported record (merged), a covered entry (deleted), a partly covered one (its events).
_SET = "set"
_DELETE = "delete"
_SHORTEN = "shorten"


def _user_record(snapshot: Any) -> UserRecord | None:
    if snapshot is None or not snapshot.exists:
        return None
    data = snapshot.to_dict() or {}
    return UserRecord(
        linked=bool(data.get("linked", False)),
        linked_at_ms=to_ms(data.get("linkedAt")),
        full_report_for_ms=int(data.get("fullReportFor") or 0),
        version=snapshot.update_time,
    )


def _states(snapshot: Any) -> dict[str, Any]:
    if snapshot is None or not snapshot.exists:
        return {}
    return dict((snapshot.to_dict() or {}).get("states") or {})


class FirestoreReportStore:
    """Report State's ReportStore (functions.reporting.model) and the fulfillment's PendingCommandStore
    (functions.fulfillment.backends)."""

    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or client()
        # The update time of each lease this process holds: renewing and releasing need no read.
        self._held: dict[tuple[str, str], Any] = {}

    def _user(self, agent_user_id: str) -> Any:
        return self._db.collection(USERS).document(agent_user_id)

    def _in(self, agent_user_id: str, collection: str, document: str) -> Any:
        return self._user(agent_user_id).collection(collection).document(document)

    def _announced(self, agent_user_id: str, event_id: str) -> Any:
        return self._in(agent_user_id, ANNOUNCED, planning.stable_id(event_id))

    # applying a change

    def read_for_apply(
        self,
        agent_user_id: str,
        device_id: str,
        entry_id: str,
        event_ids: Sequence[str],
        command_id: str | None,
    ) -> ApplyRead:
        user_ref = self._user(agent_user_id)
        device_ref = self._in(agent_user_id, DEVICES, device_id)
        observed_ref = self._in(agent_user_id, OBSERVED, device_id)
        entry_ref = self._in(agent_user_id, QUEUE, entry_id)
        event_refs = {event_id: self._announced(agent_user_id, event_id) for event_id in event_ids}
        pending_ref = self._in(agent_user_id, FOLLOW_UPS, command_id) if command_id else None
        refs = [user_ref, device_ref, observed_ref, entry_ref, *event_refs.values()]
        if pending_ref is not None:
            refs.append(pending_ref)
        found = {snap.reference.path: snap for snap in self._db.get_all(refs)}

        def snap(ref: Any) -> Any:
            hit = found.get(ref.path)
            return hit if hit is not None and hit.exists else None

        device_snap = snap(device_ref)
        observed_snap = snap(observed_ref)
        observed = Observed()
        if observed_snap is not None:
            observed_at = int((observed_snap.to_dict() or {}).get("observedAt") or 0)
            observed = Observed(observed_at, observed_snap.update_time)
        pending_snap = snap(pending_ref) if pending_ref is not None else None
        return ApplyRead(
            user=_user_record(snap(user_ref)),
            device=StoredDevice(device_snap.to_dict() or {}, device_snap.update_time) if device_snap else None,
            observed=observed,
            entry_exists=snap(entry_ref) is not None,
            seen_events=frozenset(event_id for event_id, ref in event_refs.items() if snap(ref) is not None),
            pending=(
                PendingCommand.from_dict(str(command_id), agent_user_id, pending_snap.to_dict() or {})
                if pending_snap is not None
                else None
            ),
            pending_version=pending_snap.update_time if pending_snap is not None else None,
        )

    def commit_apply(self, agent_user_id: str, write: ApplyWrite, now_ms: int) -> bool:
        device_unread = write.state is not None and write.device_version is None
        if device_unread or (write.completed_command is not None and write.completed_command[1] is None):
            return False  # read as absent: an update without its version would create the document
        batch = self._db.batch()
        writes = 0
        if write.state is not None:
            changes: dict[str, Any] = {"state": write.state, REPORT_SEQ: write.report_seq}
            if write.online is not None:
                changes["online"] = write.online
            batch.update(
                self._in(agent_user_id, DEVICES, write.device_id),
                changes,
                option=self._db.write_option(last_update_time=write.device_version),
            )
            writes += 1
        if write.observed_at_ms is not None:
            observed_ref = self._in(agent_user_id, OBSERVED, write.device_id)
            if write.observed_version is None:
                batch.create(observed_ref, {"observedAt": write.observed_at_ms})
            else:
                batch.update(
                    observed_ref,
                    {"observedAt": write.observed_at_ms},
                    option=self._db.write_option(last_update_time=write.observed_version),
                )
            writes += 1
        if write.entry is not None:
            batch.create(self._in(agent_user_id, QUEUE, write.entry.entry_id), self._entry_document(write.entry))
            writes += 1
        now = to_datetime(now_ms)
        for event_id in write.seen_events:
            batch.create(
                self._announced(agent_user_id, event_id),
                {"eventId": event_id, "at": now, "expireAt": now + ANNOUNCED_TTL},
            )
            writes += 1
        if write.completed_command is not None:
            command_id, version, entry_id = write.completed_command
            batch.update(
                self._in(agent_user_id, FOLLOW_UPS, command_id),
                {"completedBy": entry_id, GIVE_UP_AT: firestore.DELETE_FIELD},
                option=self._db.write_option(last_update_time=version),
            )
            writes += 1
        if not writes:
            return True
        try:
            batch.commit()
        except _CONFLICTS:
            return False
        return True

    @staticmethod
    def _entry_document(entry: QueueEntry) -> dict[str, Any]:
        return {**entry.to_dict(), "expireAt": to_datetime(entry.created_ms) + QUEUE_TTL}

    # reading

    def user(self, agent_user_id: str) -> UserRecord | None:
        return _user_record(self._user(agent_user_id).get())

    def entry_exists(self, agent_user_id: str, entry_id: str) -> bool:
        return bool(self._in(agent_user_id, QUEUE, entry_id).get().exists)

    def queue(self, agent_user_id: str, limit: int) -> list[QueueEntry]:
        collection = self._user(agent_user_id).collection(QUEUE)
        return [QueueEntry.from_dict(snap.id, snap.to_dict() or {}) for snap in collection.limit(limit).stream()]

    def flush_read(
        self, agent_user_id: str, device_ids: set[str] | None
    ) -> tuple[UserRecord | None, dict[str, tuple[DeviceDocument | None, dict[str, Any]]]]:
        user = self._user(agent_user_id)
        if device_ids is None:
            documents = {snap.id: snap.to_dict() or {} for snap in user.collection(DEVICES).stream()}
            reported = {snap.id: _states(snap) for snap in user.collection(REPORTED).stream()}
            views = {device_id: (document, reported.get(device_id, {})) for device_id, document in documents.items()}
            return self.user(agent_user_id), views
        ordered = sorted(device_ids)
        device_refs = [user.collection(DEVICES).document(d) for d in ordered]
        reported_refs = [user.collection(REPORTED).document(d) for d in ordered]
        found = {snap.reference.path: snap for snap in self._db.get_all([user, *device_refs, *reported_refs])}
        found_views: dict[str, tuple[DeviceDocument | None, dict[str, Any]]] = {}
        for device_id, device_ref, reported_ref in zip(ordered, device_refs, reported_refs, strict=True):
            device = found.get(device_ref.path)
            found_views[device_id] = (
                (device.to_dict() or {}) if device is not None and device.exists else None,
                _states(found.get(reported_ref.path)),
            )
        return _user_record(found.get(user.path)), found_views

    # flushing

    def commit_flush(
        self,
        agent_user_id: str,
        reported: Mapping[str, dict[str, Any]],
        done: Sequence[str],
        remaining_events: Mapping[str, tuple[Event, ...]],
        now_ms: int,
    ) -> None:
        now = to_datetime(now_ms)
        writes: list[tuple[str, Any, Any]] = []
        for device_id, states in reported.items():
            reported_ref = self._in(agent_user_id, REPORTED, device_id)
            writes.append((_SET, reported_ref, {"states": states, "reportedAt": now}))
        for entry_id in done:
            writes.append((_DELETE, self._in(agent_user_id, QUEUE, entry_id), None))
        for entry_id, events in remaining_events.items():
            writes.append(
                (_SHORTEN, self._in(agent_user_id, QUEUE, entry_id), {"events": [e.to_dict() for e in events]})
            )
        for start in range(0, len(writes), BATCH_LIMIT):
            self._commit_flush_batch(writes[start : start + BATCH_LIMIT])

    def _commit_flush_batch(self, writes: Sequence[tuple[str, Any, Any]]) -> None:
        """One batch commit, unless an entry to shorten was deleted meanwhile (another flush covered it): the
        batch then failed as a whole, so one read finds the entries gone and the rest is committed again. An update
        (not a merge) keeps a deleted entry from coming back; each further NotFound needs a further deletion, so
        this ends."""
        while writes:
            batch = self._db.batch()
            for kind, ref, data in writes:
                if kind == _SET:
                    batch.set(ref, data, merge=["states", "reportedAt"])
                elif kind == _DELETE:
                    batch.delete(ref)
                else:
                    batch.update(ref, data)
            try:
                batch.commit()
                return
            except google_errors.NotFound:
                shortened = [ref for kind, ref, _ in writes if kind == _SHORTEN]
                gone = (
                    {snap.reference.path for snap in self._db.get_all(shortened) if not snap.exists}
                    if shortened
                    else set()
                )
                if not gone:
                    raise  # none of the entries is gone: not the race this is for
            writes = [(kind, ref, data) for kind, ref, data in writes if not (kind == _SHORTEN and ref.path in gone)]

    def queue_full_report(self, agent_user_id: str, entry: QueueEntry, user: UserRecord) -> bool:
        batch = self._db.batch()
        batch.create(self._in(agent_user_id, QUEUE, entry.entry_id), self._entry_document(entry))
        batch.update(
            self._user(agent_user_id),
            {"fullReportFor": user.linked_at_ms},
            option=self._db.write_option(last_update_time=user.version),
        )
        try:
            batch.commit()
        except _CONFLICTS:
            return False
        return True

    def mark_unlinked(self, agent_user_id: str, user: UserRecord, now_ms: int) -> bool:
        try:
            self._user(agent_user_id).update(
                {"linked": False, "unlinkedAt": to_datetime(now_ms), "unlinkedBy": "homegraph-404"},
                option=self._db.write_option(last_update_time=user.version),
            )
        except _CONFLICTS:
            return False
        return True

    # the user's lease

    def try_lease(self, agent_user_id: str, owner: str, now_ms: int, until_ms: int) -> int:
        ref = self._in(agent_user_id, LEASE, LEASE_DOCUMENT)
        data = {"owner": owner, "until": until_ms}
        held = self._held.get((agent_user_id, owner))
        try:
            if held is not None:  # renewing our own lease
                result = ref.update(data, option=self._db.write_option(last_update_time=held))
            else:
                try:
                    result = ref.create(data)  # released leases are deleted: usually there is none
                except google_errors.AlreadyExists:
                    snap = ref.get()
                    current = snap.to_dict() or {}
                    holder_until = int(current.get("until") or 0)
                    if snap.exists and current.get("owner") != owner and holder_until > now_ms:
                        return holder_until
                    if not snap.exists:
                        return now_ms + LEASE_RACE_MS
                    result = ref.update(data, option=self._db.write_option(last_update_time=snap.update_time))
        except _CONFLICTS:
            self._held.pop((agent_user_id, owner), None)
            return now_ms + LEASE_RACE_MS
        if len(self._held) > 10_000:  # leases kept for a backoff are never released: forget the oldest
            self._held.pop(next(iter(self._held)))
        self._held[(agent_user_id, owner)] = result.update_time
        return 0

    def peek(self, agent_user_id: str, entry_ids: Sequence[str], now_ms: int) -> tuple[set[str], int]:
        lease_ref = self._in(agent_user_id, LEASE, LEASE_DOCUMENT)
        entry_refs = {self._in(agent_user_id, QUEUE, entry_id).path: entry_id for entry_id in entry_ids}
        refs = [lease_ref, *(self._db.document(path) for path in entry_refs)]
        found = {snap.reference.path: snap for snap in self._db.get_all(refs)}
        lease = found.get(lease_ref.path)
        holder_until = int((lease.to_dict() or {}).get("until") or 0) if lease is not None and lease.exists else 0
        queued = {
            entry_id for path, entry_id in entry_refs.items() if found.get(path) is not None and found[path].exists
        }
        return queued, holder_until if holder_until > now_ms else 0

    def release_lease(self, agent_user_id: str, owner: str) -> None:
        ref = self._in(agent_user_id, LEASE, LEASE_DOCUMENT)
        held = self._held.pop((agent_user_id, owner), None)
        if held is None:
            return
        # Taken over meanwhile (a conflict): then it is theirs now.
        with contextlib.suppress(*_CONFLICTS):
            ref.delete(option=self._db.write_option(last_update_time=held))

    # pending commands (the fulfillment's side)

    def save_pending(self, pending: PendingCommand) -> None:
        document = {**pending.to_dict(), "expiresAt": to_datetime(pending.expires_ms)}
        self._in(pending.agent_user_id, FOLLOW_UPS, pending.command_id).set(document)

    # pending commands nobody completed (functions/reporting/timeouts.py)

    def overdue_pending(self, now_ms: int, limit: int) -> list[tuple[PendingCommand, Any]]:
        query = (
            self._db.collection_group(FOLLOW_UPS)
            .where(filter=firestore.FieldFilter(GIVE_UP_AT, "<=", now_ms))
            .order_by(GIVE_UP_AT)
            .limit(limit)
        )
        found: list[tuple[PendingCommand, Any]] = []
        completed: list[tuple[Any, Any]] = []  # (the command's snapshot, its queue entry's reference)
        for snap in query.stream():
            data = snap.to_dict() or {}
            agent_user_id = snap.reference.parent.parent.id
            completed_by = data.get("completedBy")
            if completed_by is None:
                found.append((PendingCommand.from_dict(snap.id, agent_user_id, data), snap.update_time))
            else:
                completed.append((snap, self._in(agent_user_id, QUEUE, str(completed_by))))
        entries = self._db.get_all([ref for _, ref in completed]) if completed else []  # one read for them all
        queued = {entry.reference.path for entry in entries if entry.exists}
        for snap, entry_ref in completed:
            if entry_ref.path in queued:
                # Given up by a sweep whose report was deferred: its FAILURE follow-up is still queued.
                agent_user_id = snap.reference.parent.parent.id
                found.append((PendingCommand.from_dict(snap.id, agent_user_id, snap.to_dict() or {}), snap.update_time))
                continue
            # Reported, or completed by a writer that left the field: no longer overdue.
            with contextlib.suppress(*_CONFLICTS):
                snap.reference.update(
                    {GIVE_UP_AT: firestore.DELETE_FIELD},
                    option=self._db.write_option(last_update_time=snap.update_time),
                )
        return found

    def give_up_pending(self, pending: PendingCommand, version: Any, entry: QueueEntry | None, now_ms: int) -> bool:
        batch = self._db.batch()
        fields: dict[str, Any] = {"completedBy": entry.entry_id if entry else GIVEN_UP, "givenUpAt": now_ms}
        if entry is None:
            # With a FAILURE follow-up queued it stays, so that a sweep whose report is deferred finds it again.
            fields[GIVE_UP_AT] = firestore.DELETE_FIELD
        batch.update(
            self._in(pending.agent_user_id, FOLLOW_UPS, pending.command_id),
            fields,
            option=self._db.write_option(last_update_time=version),
        )
        if entry is not None:
            batch.create(self._in(pending.agent_user_id, QUEUE, entry.entry_id), self._entry_document(entry))
        try:
            batch.commit()
        except _CONFLICTS:
            return False
        return True
