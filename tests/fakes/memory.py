"""In-memory implementations of the domain's ports, for unit tests and examples (no I/O)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
from collections.abc import Sequence
from typing import Any

from functions.core.challenges import PinRecord
from functions.core.ports import DeviceDocument, Snapshot, StateWrite, StoredDevice
from functions.core.tokens import TokenRecord


class MemoryStore:
    """Users, their devices and tokens in dicts; versions are a counter per device.

    Like Firestore's update times (the adapter's versions), a version moves only when a write changes the
    document, and one lock makes each call atomic, so that threads can play concurrent requests."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, dict[str, Any]]] = {}
        self.versions: dict[tuple[str, str], int] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.users: dict[str, dict[str, Any]] = {}
        # DISCONNECT's view of grants: the grant of a token (by hash), and each grant's record: (user, expiry ms).
        self.grant_ids: dict[str, str] = {}
        self.grant_records: dict[str, tuple[str, int]] = {}
        self._counter = itertools.count(1)
        self._lock = threading.RLock()

    # test set-up helpers

    def put_device(self, agent_user_id: str, device_id: str, document: DeviceDocument) -> None:
        self.devices.setdefault(agent_user_id, {})[device_id] = copy.deepcopy(dict(document))
        self.versions[(agent_user_id, device_id)] = next(self._counter)

    def save(self, record: TokenRecord) -> None:
        self.tokens[record.token_hash] = record

    def get(self, token_hash: str) -> TokenRecord | None:
        return self.tokens.get(token_hash)

    # FulfillmentStore

    def load(self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str]) -> Snapshot:
        owned = self.devices.get(agent_user_id, {})
        found = {
            device_id: StoredDevice(copy.deepcopy(owned[device_id]), self.versions[(agent_user_id, device_id)])
            if device_id in owned
            else None
            for device_id in device_ids
        }
        return Snapshot(self.tokens.get(token_hash) if token_hash else None, found)

    def list_devices(self, agent_user_id: str) -> list[tuple[str, DeviceDocument]]:
        return [(i, copy.deepcopy(d)) for i, d in sorted(self.devices.get(agent_user_id, {}).items())]

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        with self._lock:
            owned = self.devices.get(agent_user_id, {})
            # A device deleted since it was read fails its precondition too (Firestore: FAILED_PRECONDITION).
            if any(
                w.device_id not in owned or self.versions.get((agent_user_id, w.device_id)) != w.version for w in writes
            ):
                return False
            for write in writes:
                document = owned[write.device_id]
                if document.get("state") != dict(write.state):
                    document["state"] = copy.deepcopy(dict(write.state))
                    self.versions[(agent_user_id, write.device_id)] = next(self._counter)
            return True

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        self.users.setdefault(agent_user_id, {}).update(linked=True, linkedAt=now_ms)

    def save_in_grant(self, record: TokenRecord, grant_id: str) -> None:
        """A token of a grant, as account linking issues them (test set-up)."""
        self.save(record)
        self.grant_ids[record.token_hash] = grant_id

    def disconnect(self, agent_user_id: str, now_ms: int, token_hash: str | None = None) -> int:
        """As the Firestore store: the token's grant goes (every grant for None; tokens without a grant are one),
        then the user is unlinked unless a live grant record or a live token is left."""
        with self._lock:
            mine = {h: r for h, r in self.tokens.items() if r.agent_user_id == agent_user_id}
            records = [g for g, (user, _) in self.grant_records.items() if user == agent_user_id]
            if token_hash is None:
                doomed, doomed_grants = set(mine), records
            elif token_hash in mine:
                grant_id = self.grant_ids.get(token_hash, "")
                doomed = {h for h in mine if self.grant_ids.get(h, "") == grant_id}
                doomed_grants = [grant_id] if grant_id in records else []
            else:
                doomed, doomed_grants = set(), []
            for doomed_hash in doomed:
                del self.tokens[doomed_hash]
                self.grant_ids.pop(doomed_hash, None)
            for grant_id in doomed_grants:
                del self.grant_records[grant_id]
            live = any(u == agent_user_id and now_ms < end for u, end in self.grant_records.values()) or any(
                r.agent_user_id == agent_user_id
                and r.kind in ("at", "rt")
                and not r.revoked
                and now_ms < r.expires_at_ms
                for r in self.tokens.values()
            )
            if not live:
                self.users.setdefault(agent_user_id, {}).update(linked=False, unlinkedAt=now_ms)
            return len(doomed) + len(doomed_grants)


class MemoryPinStore:
    """Device PINs (their hashes) and failure counters; versions are a counter per record.

    As with Firestore's update times, a version moves only when a write changes the record; one lock makes each
    call atomic (the adapter counts attempts with an atomic increment)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], PinRecord] = {}
        self._set_at: dict[tuple[str, str], int] = {}  # the adapter's updatedAt: setting a PIN again is a change
        self._counter = itertools.count(1)
        self._lock = threading.RLock()

    def get(self, agent_user_id: str, device_id: str) -> PinRecord | None:
        return self.records.get((agent_user_id, device_id))

    def _put(self, key: tuple[str, str], record: PinRecord, **changes: Any) -> None:
        changed = dataclasses.replace(record, **changes, version=None)
        current = self.records.get(key)
        if current is not None and changed == dataclasses.replace(current, version=None):
            return  # nothing changed: the version stays
        self.records[key] = dataclasses.replace(changed, version=next(self._counter))

    def count_attempt(self, agent_user_id: str, device_id: str, now_ms: int) -> int | None:
        with self._lock:
            key = (agent_user_id, device_id)
            record = self.records.get(key)
            if record is None:
                return None
            self._put(key, record, failures=record.failures + 1, last_attempt_ms=now_ms)
            return record.failures + 1

    def clear_failures(self, agent_user_id: str, device_id: str) -> None:
        with self._lock:
            key = (agent_user_id, device_id)
            if key in self.records:
                self._put(key, self.records[key], failures=0)

    def reset_if_unchanged(self, agent_user_id: str, device_id: str, version: Any) -> bool:
        with self._lock:
            key = (agent_user_id, device_id)
            record = self.records.get(key)
            if record is None or record.version != version:
                return False
            self._put(key, record, failures=0)
            return True

    def set_pin(self, agent_user_id: str, device_id: str, pin_hash: str, now_ms: int) -> None:
        with self._lock:
            key = (agent_user_id, device_id)
            if self._set_at.get(key) != now_ms:
                self.records.pop(key, None)  # a new PIN document: a new version even if it reads the same
            self._set_at[key] = now_ms
            self._put(key, PinRecord(pin_hash))

    def remove_pin(self, agent_user_id: str, device_id: str) -> bool:
        with self._lock:
            self._set_at.pop((agent_user_id, device_id), None)
            return self.records.pop((agent_user_id, device_id), None) is not None
