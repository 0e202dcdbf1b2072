"""In-memory ReportStore and PendingCommandStore (unit tests): the Firestore adapter's semantics, in dicts.

Versions are a counter per document; every conditional write checks them like Firestore's update-time
preconditions, and `commit_apply` writes all or nothing. Like an update time, a version moves only when a write
changes its document. One lock makes each call atomic, so that threads can play concurrent function instances.
tests/contracts/test_report_store.py holds this fake to functions/reporting/store.py.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from functions.core.commands import GIVE_UP_AT, GIVEN_UP, PendingCommand
from functions.core.ports import DeviceDocument, StoredDevice
from functions.reporting.model import REPORT_SEQ, ApplyRead, ApplyWrite, Observed, UserRecord
from functions.reporting.planning import Event, QueueEntry


class MemoryReportStore:
    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.devices: dict[tuple[str, str], dict[str, Any]] = {}
        self.reported: dict[tuple[str, str], dict[str, Any]] = {}
        self.observed: dict[tuple[str, str], int] = {}
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.announced: set[tuple[str, str]] = set()
        self.pending: dict[tuple[str, str], dict[str, Any]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.versions: dict[tuple[str, ...], int] = {}
        self.writes: list[tuple[str, ...]] = []  # the kind and key of every write, in order
        self._counter = itertools.count(1)
        self._lock = threading.RLock()

    # set-up helpers (tests)

    def put_user(self, agent_user_id: str, linked: bool = True, linked_at_ms: int = 1) -> None:
        with self._lock:
            before = self.users.get(agent_user_id)
            self.users[agent_user_id] = {"linked": linked, "linkedAt": linked_at_ms}
            self._bump_if_changed(("user", agent_user_id), before, self.users[agent_user_id])

    def put_device(self, agent_user_id: str, device_id: str, document: DeviceDocument) -> None:
        with self._lock:
            before = self.devices.get((agent_user_id, device_id))
            self.devices[(agent_user_id, device_id)] = copy.deepcopy(dict(document))
            self._bump_if_changed(
                ("device", agent_user_id, device_id), before, self.devices[(agent_user_id, device_id)]
            )

    def write_state(
        self, agent_user_id: str, device_id: str, state: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A device cloud writing the document directly: (before, after) as the trigger sees them."""
        with self._lock:
            key = (agent_user_id, device_id)
            before = copy.deepcopy(self.devices[key])
            self.devices[key]["state"] = copy.deepcopy(dict(state))
            self._bump_if_changed(("device", agent_user_id, device_id), before, self.devices[key])
            return before, copy.deepcopy(self.devices[key])

    def _bump(self, key: tuple[str, ...]) -> int:
        version = next(self._counter)
        self.versions[key] = version
        return version

    def _bump_if_changed(self, key: tuple[str, ...], before: Any, after: Any) -> None:
        """A write that leaves its document as it was keeps the version (Firestore keeps the update time)."""
        if before is None or before != after:
            self._bump(key)

    def _version(self, key: tuple[str, ...]) -> int | None:
        return self.versions.get(key)

    # ReportStore

    def read_for_apply(
        self,
        agent_user_id: str,
        device_id: str,
        entry_id: str,
        event_ids: Sequence[str],
        command_id: str | None,
    ) -> ApplyRead:
        with self._lock:
            device = self.devices.get((agent_user_id, device_id))
            observed = self.observed.get((agent_user_id, device_id))
            pending = self.pending.get((agent_user_id, command_id)) if command_id else None
            return ApplyRead(
                user=self.user(agent_user_id),
                device=(
                    StoredDevice(copy.deepcopy(device), self._version(("device", agent_user_id, device_id)))
                    if device is not None
                    else None
                ),
                observed=(
                    Observed(observed, self._version(("observed", agent_user_id, device_id)))
                    if observed is not None
                    else Observed()
                ),
                entry_exists=(agent_user_id, entry_id) in self.entries,
                seen_events=frozenset(e for e in event_ids if (agent_user_id, e) in self.announced),
                pending=(
                    PendingCommand.from_dict(str(command_id), agent_user_id, copy.deepcopy(pending))
                    if pending is not None
                    else None
                ),
                pending_version=self._version(("pending", agent_user_id, str(command_id))) if pending else None,
            )

    def commit_apply(self, agent_user_id: str, write: ApplyWrite, now_ms: int) -> bool:
        with self._lock:
            device_key = ("device", agent_user_id, write.device_id)
            observed_key = ("observed", agent_user_id, write.device_id)
            # No version: read as absent (Firestore refuses too rather than create the document).
            if write.state is not None and (
                write.device_version is None or self._version(device_key) != write.device_version
            ):
                return False
            if write.observed_at_ms is not None and self._version(observed_key) != write.observed_version:
                return False
            if write.entry is not None and (agent_user_id, write.entry.entry_id) in self.entries:
                return False
            if any((agent_user_id, e) in self.announced for e in write.seen_events):
                return False
            if write.completed_command is not None:
                command_id, version, _ = write.completed_command
                if version is None or self._version(("pending", agent_user_id, command_id)) != version:
                    return False
            if write.state is not None:
                document = self.devices[(agent_user_id, write.device_id)]
                before = copy.deepcopy(document)
                document["state"] = copy.deepcopy(write.state)
                document[REPORT_SEQ] = write.report_seq
                if write.online is not None:
                    document["online"] = write.online
                self._bump_if_changed(device_key, before, document)
                self.writes.append(device_key)
            if write.observed_at_ms is not None:
                before_observed = self.observed.get((agent_user_id, write.device_id))
                self.observed[(agent_user_id, write.device_id)] = write.observed_at_ms
                self._bump_if_changed(observed_key, before_observed, write.observed_at_ms)
            if write.entry is not None:
                self.entries[(agent_user_id, write.entry.entry_id)] = copy.deepcopy(write.entry.to_dict())
                self.writes.append(("entry", agent_user_id, write.entry.entry_id))
            for event_id in write.seen_events:
                self.announced.add((agent_user_id, event_id))
            if write.completed_command is not None:
                command_id, _, entry_id = write.completed_command
                before_by = self.pending[(agent_user_id, command_id)].get("completedBy")
                self.pending[(agent_user_id, command_id)]["completedBy"] = entry_id
                if before_by != entry_id:
                    self._bump(("pending", agent_user_id, command_id))
            return True

    def user(self, agent_user_id: str) -> UserRecord | None:
        with self._lock:
            data = self.users.get(agent_user_id)
            if data is None:
                return None
            return UserRecord(
                linked=bool(data.get("linked")),
                linked_at_ms=int(data.get("linkedAt") or 0),
                full_report_for_ms=int(data.get("fullReportFor") or 0),
                version=self._version(("user", agent_user_id)),
            )

    def entry_exists(self, agent_user_id: str, entry_id: str) -> bool:
        with self._lock:
            return (agent_user_id, entry_id) in self.entries

    def queue(self, agent_user_id: str, limit: int) -> list[QueueEntry]:
        with self._lock:
            found = sorted((key[1], data) for key, data in self.entries.items() if key[0] == agent_user_id)
            return [QueueEntry.from_dict(entry_id, copy.deepcopy(data)) for entry_id, data in found[:limit]]

    def flush_read(
        self, agent_user_id: str, device_ids: set[str] | None
    ) -> tuple[UserRecord | None, dict[str, tuple[DeviceDocument | None, dict[str, Any]]]]:
        with self._lock:
            ids = (
                sorted(d for (u, d) in self.devices if u == agent_user_id) if device_ids is None else sorted(device_ids)
            )
            views: dict[str, tuple[DeviceDocument | None, dict[str, Any]]] = {
                d: (
                    copy.deepcopy(self.devices.get((agent_user_id, d))),
                    copy.deepcopy(self.reported.get((agent_user_id, d), {}).get("states") or {}),
                )
                for d in ids
            }
            return self.user(agent_user_id), views

    def commit_flush(
        self,
        agent_user_id: str,
        reported: Mapping[str, dict[str, Any]],
        done: Sequence[str],
        remaining_events: Mapping[str, tuple[Event, ...]],
        now_ms: int,
    ) -> None:
        with self._lock:
            for device_id, states in reported.items():
                record = self.reported.setdefault((agent_user_id, device_id), {})
                record["states"] = copy.deepcopy(states)
                self._bump(("reported", agent_user_id, device_id))
            for entry_id in done:
                self.entries.pop((agent_user_id, entry_id), None)
            for entry_id, events in remaining_events.items():
                if (agent_user_id, entry_id) in self.entries:
                    self.entries[(agent_user_id, entry_id)]["events"] = [e.to_dict() for e in events]

    def queue_full_report(self, agent_user_id: str, entry: QueueEntry, user: UserRecord) -> bool:
        with self._lock:
            if (
                self._version(("user", agent_user_id)) != user.version
                or (agent_user_id, entry.entry_id) in self.entries
            ):
                return False
            self.entries[(agent_user_id, entry.entry_id)] = copy.deepcopy(entry.to_dict())
            before = dict(self.users[agent_user_id])
            self.users[agent_user_id]["fullReportFor"] = user.linked_at_ms
            self._bump_if_changed(("user", agent_user_id), before, self.users[agent_user_id])
            return True

    def mark_unlinked(self, agent_user_id: str, user: UserRecord, now_ms: int) -> bool:
        with self._lock:
            if self._version(("user", agent_user_id)) != user.version:
                return False
            before = dict(self.users[agent_user_id])
            self.users[agent_user_id].update(linked=False, unlinkedAt=now_ms, unlinkedBy="homegraph-404")
            self._bump_if_changed(("user", agent_user_id), before, self.users[agent_user_id])
            return True

    def try_lease(self, agent_user_id: str, owner: str, now_ms: int, until_ms: int) -> int:
        with self._lock:
            current = self.leases.get(agent_user_id)
            if current is not None and current["owner"] != owner and current["until"] > now_ms:
                return int(current["until"])
            self.leases[agent_user_id] = {"owner": owner, "until": until_ms}
            return 0

    def peek(self, agent_user_id: str, entry_ids: Sequence[str], now_ms: int) -> tuple[set[str], int]:
        with self._lock:
            lease = self.leases.get(agent_user_id)
            until = int(lease["until"]) if lease is not None and lease["until"] > now_ms else 0
            return {e for e in entry_ids if (agent_user_id, e) in self.entries}, until

    def release_lease(self, agent_user_id: str, owner: str) -> None:
        with self._lock:
            if self.leases.get(agent_user_id, {}).get("owner") == owner:
                del self.leases[agent_user_id]

    # PendingCommandStore

    def save_pending(self, pending: PendingCommand) -> None:
        with self._lock:
            key = (pending.agent_user_id, pending.command_id)
            before = self.pending.get(key)
            self.pending[key] = pending.to_dict()
            self._bump_if_changed(("pending", *key), before, self.pending[key])

    # the timeout sweep

    def overdue_pending(self, now_ms: int, limit: int) -> list[tuple[PendingCommand, Any]]:
        found = []
        with self._lock:
            for (user, command_id), data in sorted(self.pending.items()):
                if data.get(GIVE_UP_AT) is None or data[GIVE_UP_AT] > now_ms:
                    continue
                completed_by = data.get("completedBy")
                if completed_by is not None and (user, completed_by) not in self.entries:
                    data.pop(GIVE_UP_AT)  # reported, or completed by a result: no longer overdue
                    continue
                found.append(
                    (PendingCommand.from_dict(command_id, user, data), self._version(("pending", user, command_id)))
                )
        return found[:limit]

    def give_up_pending(self, pending: PendingCommand, version: Any, entry: QueueEntry | None, now_ms: int) -> bool:
        with self._lock:
            key = (pending.agent_user_id, pending.command_id)
            if self._version(("pending", *key)) != version:
                return False
            if entry is not None:
                self.entries[(pending.agent_user_id, entry.entry_id)] = copy.deepcopy(entry.to_dict())
            completed = {"completedBy": entry.entry_id if entry else GIVEN_UP, "givenUpAt": now_ms}
            self.pending[key] = {**self.pending[key], **completed}
            if entry is None:
                self.pending[key].pop(GIVE_UP_AT, None)  # with a follow-up queued it stays, to be found again
            self._bump(("pending", *key))
            return True
