"""The small interfaces the domain needs from storage; adapters implement them (Firestore, in-memory fakes).

Also the fulfillment's reads through them (`ValidatedReads`): each stored device validated once per version.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from functions.core.device import Device, parse_device, state_problems
from functions.core.errors import InvalidDevice
from functions.core.tokens import TokenRecord

DeviceDocument = Mapping[str, Any]


@dataclass(frozen=True)
class StoredDevice:
    document: DeviceDocument
    version: Any  # opaque; used as a precondition when writing the device back


@dataclass(frozen=True)
class Snapshot:
    """The result of one batched read: a token record and some of a user's devices (None where absent)."""

    token: TokenRecord | None
    devices: Mapping[str, StoredDevice | None] = field(default_factory=dict)


@dataclass(frozen=True)
class StateWrite:
    device_id: str
    state: Mapping[str, Any]
    version: Any


class FulfillmentStore(Protocol):
    def load(self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str]) -> Snapshot:
        """The token record (if a hash is given) and the user's named devices, read together in one round trip."""
        ...

    def list_devices(self, agent_user_id: str) -> list[tuple[str, DeviceDocument]]:
        """All of the user's device documents, in one query."""
        ...

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        """Writes all states at once if no device changed since it was read; False (nothing written) if one did."""
        ...

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        """The user is linked: outgoing HomeGraph calls for them may go ahead."""
        ...

    def disconnect(self, agent_user_id: str, now_ms: int, token_hash: str | None = None) -> int:
        """Revokes the grant of the token `token_hash` (every grant of the user with None), and marks the user
        unlinked once no grant of theirs is left; returns how many stored credentials were revoked."""
        ...


# The document of a device that comes back at the version the caller said it holds: its fields were not read.
NOT_READ: DeviceDocument = MappingProxyType({})


@runtime_checkable
class KnownVersionStore(Protocol):
    """What a FulfillmentStore may offer so that devices the caller already validated are not read again.

    `known` maps device ids to the version the caller holds a validated copy of. A device still at that version
    comes back as its version with the document NOT_READ (or whole, if the store read it anyway); a device at any
    other version, or not in `known`, comes back whole. Versions compare with ==.
    """

    def load_known(
        self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str], known: Mapping[str, Any]
    ) -> Snapshot:
        """As FulfillmentStore.load, sparing the devices at their known versions."""
        ...

    def list_known(self, agent_user_id: str, known: Mapping[str, Any]) -> list[tuple[str, StoredDevice]]:
        """All of the user's devices with their versions, in id order, sparing those at their known versions."""
        ...

    def commit_known(self, agent_user_id: str, writes: Sequence[StateWrite]) -> Mapping[str, Any] | None:
        """As FulfillmentStore.commit_states, answering each written device's new version (None: nothing written)."""
        ...


class _WholeDocuments:
    """A KnownVersionStore over a store without one: every document read whole, SYNC's listing without versions
    (so nothing of it is remembered), and writes that tell no new version."""

    def __init__(self, store: FulfillmentStore) -> None:
        self._store = store

    def load_known(
        self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str], known: Mapping[str, Any]
    ) -> Snapshot:
        return self._store.load(token_hash, agent_user_id, device_ids)

    def list_known(self, agent_user_id: str, known: Mapping[str, Any]) -> list[tuple[str, StoredDevice]]:
        return [
            (device_id, StoredDevice(document, None)) for device_id, document in self._store.list_devices(agent_user_id)
        ]

    def commit_known(self, agent_user_id: str, writes: Sequence[StateWrite]) -> Mapping[str, Any] | None:
        return {} if self._store.commit_states(agent_user_id, writes) else None


def known_versions(store: FulfillmentStore) -> KnownVersionStore:
    """The store's own KnownVersionStore, or one that reads whole documents through its FulfillmentStore methods."""
    return store if isinstance(store, KnownVersionStore) else _WholeDocuments(store)


# Validated once: the devices an instance validated, remembered by the version they were validated at

# About 2 KB each: an instance remembers up to this many devices, the least recently read user's going first.
MAX_REMEMBERED_DEVICES = 20_000

# (version, the device validated at that version or why its document was invalid there)
Remembered = tuple[Any, "Device | str"]


class ValidatedDevices:
    """Devices this instance validated, by user and device id, with the stored version each was validated at.

    A stored document is validated once per version: its version (Firestore's update time) moves with every
    write, so a device read again at the same version is the one remembered, and a device at any other version
    (written by another instance, the Report State function, the CLI or straight in Firestore) is validated
    again before it is served. An invalid document is remembered with its problem, so that every read still
    reports it. A state this instance writes is checked before its new version is remembered (`remember_state`).
    Thread-safe; bounded by `limit` devices.

    It also tells whether a read should spare the remembered devices (`spare_reads`): not while the user's devices
    keep changing elsewhere, where a read of versions only would find them changed and read them again (two round
    trips); one whole read then does (and still validates only the changed ones), until a read finds none changed.
    """

    def __init__(self, limit: int = MAX_REMEMBERED_DEVICES) -> None:
        self._limit = limit
        self._users: dict[str, dict[str, Remembered]] = {}  # in order of use, the least recent first
        self._count = 0
        self._changing: set[str] = set()  # users whose remembered devices had changed at their last read
        self._lock = threading.Lock()

    def held(self, agent_user_id: str, device_ids: Iterable[str] | None = None) -> dict[str, Remembered]:
        """What is remembered now of the user's devices (all of them, or those named)."""
        with self._lock:
            devices = self._users.pop(agent_user_id, None)
            if devices is None:
                return {}
            self._users[agent_user_id] = devices
            if device_ids is None:
                return dict(devices)
            return {device_id: devices[device_id] for device_id in device_ids if device_id in devices}

    def spare_reads(self, agent_user_id: str) -> bool:
        """Whether the next read of the user's devices should read the remembered ones' versions only."""
        return agent_user_id not in self._changing

    def note_read(
        self, agent_user_id: str, held: Mapping[str, Remembered], versions: Iterable[tuple[str, Any]]
    ) -> None:
        """A read found these (device id, version): whether any `held` device had changed decides the next read."""
        changed = any(device_id in held and held[device_id][0] != version for device_id, version in versions)
        with self._lock:
            if changed:
                self._changing.add(agent_user_id)
            else:
                self._changing.discard(agent_user_id)

    def resolve(
        self,
        agent_user_id: str,
        device_id: str,
        version: Any,
        document: Mapping[str, Any],
        held: Mapping[str, Remembered],
    ) -> Device | str:
        """The device at `version`: the one `held` if it is that version, else `document` validated now (and
        remembered under `version`, unless that is None). A str is why the document is invalid."""
        remembered = held.get(device_id)
        if remembered is not None and version is not None and remembered[0] == version:
            return remembered[1]
        found: Device | str
        try:
            found = parse_device(device_id, document)
        except InvalidDevice as problem:
            found = str(problem)
        if version is not None:
            self._put(agent_user_id, device_id, (version, found))
        return found

    def remember_state(self, agent_user_id: str, device: Device, state: Mapping[str, Any], version: Any) -> bool:
        """After this instance wrote `state` over the valid `device`'s: remembers the result at the write's new
        `version` if that state keeps the document valid (else the next read validates it)."""
        if version is None or state_problems(device, state):
            return False
        self._put(agent_user_id, device.id, (version, dataclasses.replace(device, state=dict(state))))
        return True

    def keep_only(self, agent_user_id: str, device_ids: Iterable[str]) -> None:
        """Forgets the user's devices not among `device_ids` (the devices a SYNC listed: the others are gone)."""
        present = set(device_ids)
        with self._lock:
            devices = self._users.get(agent_user_id)
            if devices is not None:
                for device_id in [d for d in devices if d not in present]:
                    del devices[device_id]
                    self._count -= 1

    def _put(self, agent_user_id: str, device_id: str, remembered: Remembered) -> None:
        with self._lock:
            devices = self._users.setdefault(agent_user_id, {})
            if device_id not in devices:
                # Over the limit, other users' devices go, least recently read first; if this user alone is over
                # it, nothing more of them is remembered (their devices are validated at every read, as before).
                while self._count >= self._limit and len(self._users) > 1:
                    oldest = next(user for user in self._users if user != agent_user_id)
                    self._count -= len(self._users.pop(oldest))
                    self._changing.discard(oldest)
                if self._count >= self._limit:
                    return
                self._count += 1
            devices[device_id] = remembered


@dataclass(frozen=True)
class Validated(StoredDevice):
    """A device as read, validated: the device, or why its document is invalid (a str)."""

    device: Device | str


class ValidatedReads:
    """The fulfillment's device reads and state writes on a FulfillmentStore, each device validated once per version.

    Reads name the versions of the devices this instance remembers (ValidatedDevices), so that a store offering
    KnownVersionStore reads only the others (functions.core.ports); a device at a new version, or never seen, is
    read whole and validated before anything uses it.
    """

    def __init__(self, store: FulfillmentStore, validated: ValidatedDevices | None = None) -> None:
        self._store = known_versions(store)
        self.validated = validated or ValidatedDevices()

    def load(
        self,
        token_hash: str | None,
        agent_user_id: str,
        device_ids: Sequence[str],
        accept: Callable[[TokenRecord], bool] | None = None,
    ) -> Snapshot:
        """The token record and the devices (each one Validated, or None where absent). With `accept`, a missing
        token record or one `accept` refuses gives a snapshot without token or devices (none validated)."""
        held = self.validated.held(agent_user_id, device_ids)
        known = _versions(held) if self.validated.spare_reads(agent_user_id) else {}
        snapshot = self._store.load_known(token_hash, agent_user_id, device_ids, known)
        if accept is not None and (snapshot.token is None or not accept(snapshot.token)):
            return Snapshot(None, {})
        self.validated.note_read(
            agent_user_id, held, [(i, s.version) for i, s in snapshot.devices.items() if s is not None]
        )
        devices: dict[str, StoredDevice | None] = {}
        for device_id, stored in snapshot.devices.items():
            if stored is not None:
                found = self.validated.resolve(agent_user_id, device_id, stored.version, stored.document, held)
                stored = Validated(stored.document, stored.version, found)
            devices[device_id] = stored
        return Snapshot(snapshot.token, devices)

    def list(self, agent_user_id: str) -> list[tuple[str, Device | str]]:
        """All of the user's devices in id order, each validated (a str: why its document is invalid)."""
        held = self.validated.held(agent_user_id)
        listed = self._store.list_known(
            agent_user_id, _versions(held) if self.validated.spare_reads(agent_user_id) else {}
        )
        self.validated.note_read(agent_user_id, held, [(device_id, stored.version) for device_id, stored in listed])
        found = [
            (device_id, self.validated.resolve(agent_user_id, device_id, stored.version, stored.document, held))
            for device_id, stored in listed
        ]
        self.validated.keep_only(agent_user_id, [device_id for device_id, _ in listed])
        return found

    def commit(self, agent_user_id: str, snapshot: Snapshot, writes: Sequence[StateWrite]) -> bool:
        """FulfillmentStore.commit_states of states over `snapshot`'s devices; a written device whose new state
        keeps it valid is remembered at its new version, so that reading it back validates nothing."""
        versions = self._store.commit_known(agent_user_id, writes)
        if versions is None:
            return False
        for write in writes:
            stored = snapshot.devices.get(write.device_id)
            if isinstance(stored, Validated) and isinstance(stored.device, Device):
                self.validated.remember_state(agent_user_id, stored.device, write.state, versions.get(write.device_id))
        return True


def _versions(held: Mapping[str, Remembered]) -> dict[str, Any]:
    return {device_id: version for device_id, (version, _) in held.items()}


class TokenStore(Protocol):
    def save(self, record: TokenRecord) -> None: ...

    def get(self, token_hash: str) -> TokenRecord | None: ...
