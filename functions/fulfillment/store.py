"""The fulfillment's Firestore stores: the devices Google reads and commands, and the user's link state.

Layout:
    users/{agentUserId}                      linked, linkedAt, unlinkedAt
    users/{agentUserId}/devices/{deviceId}   the device document (see functions.core.device)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from functions.core.ports import NOT_READ, DeviceDocument, Snapshot, StateWrite, StoredDevice
from functions.platform.firestore import (
    BATCH_LIMIT,
    DEVICES,
    TOKENS,
    USERS,
    client,
    delete_documents,
    to_datetime,
    token_from_document,
)

# The fields a token record is read with (functions.platform.firestore.token_from_document): what a read that
# spares the devices asks for, so that the devices come back as their versions alone.
TOKEN_FIELDS = ("kind", "agentUserId", "clientId", "expiresAt", "revoked")


class DeviceExists(Exception):
    pass


class FirestoreDeviceRegistry:
    """Operators' view of a user's devices (the CLI): validated documents in, whole batches or nothing."""

    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or client()

    def _devices(self, agent_user_id: str) -> Any:
        return self._db.collection(USERS).document(agent_user_id).collection(DEVICES)

    def add(self, agent_user_id: str, documents: Sequence[tuple[str, dict[str, Any]]], replace: bool = False) -> None:
        """Stores the devices; without `replace`, fails with DeviceExists (writing none) if one already exists."""
        if not replace:
            refs = [self._devices(agent_user_id).document(device_id) for device_id, _ in documents]
            existing = [snap.id for snap in self._db.get_all(refs) if snap.exists] if refs else []
            if existing:
                raise DeviceExists(", ".join(sorted(existing)))
        for start in range(0, len(documents), BATCH_LIMIT):
            batch = self._db.batch()
            for device_id, document in documents[start : start + BATCH_LIMIT]:
                ref = self._devices(agent_user_id).document(device_id)
                if replace:
                    batch.set(ref, document)
                else:
                    batch.create(ref, document)
            try:
                batch.commit()
            except google_errors.AlreadyExists as exists:
                raise DeviceExists(str(exists)) from exists

    def list(self, agent_user_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(snap.id, snap.to_dict() or {}) for snap in self._devices(agent_user_id).stream()]

    def get(self, agent_user_id: str, device_id: str) -> dict[str, Any] | None:
        snap = self._devices(agent_user_id).document(device_id).get()
        return (snap.to_dict() or {}) if snap.exists else None

    def remove(self, agent_user_id: str, device_id: str) -> bool:
        """Deletes the device and, in the same batch, its PIN (a PIN must not outlive its device)."""
        from functions.fulfillment.pin_store import DEVICE_PINS

        ref = self._devices(agent_user_id).document(device_id)
        if not ref.get().exists:
            return False
        batch = self._db.batch()
        batch.delete(ref)
        batch.delete(self._db.collection(USERS).document(agent_user_id).collection(DEVICE_PINS).document(device_id))
        batch.commit()
        return True

    def update(self, agent_user_id: str, device_id: str, changes: dict[str, Any]) -> bool:
        """Applies field-path changes (e.g. {"name.name": "Lamp"}); False if there is no such device."""
        try:
            self._devices(agent_user_id).document(device_id).update(changes)
        except google_errors.NotFound:
            return False
        return True


class FirestoreFulfillmentStore:
    """The FulfillmentStore and its KnownVersionStore reads (functions.core.ports): a device the caller holds at
    its current update time comes back as that version alone, its fields not read (nor decoded, nor copied)."""

    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or client()

    def _device_ref(self, agent_user_id: str, device_id: str) -> Any:
        return self._db.collection(USERS).document(agent_user_id).collection(DEVICES).document(device_id)

    def load(self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str]) -> Snapshot:
        return self.load_known(token_hash, agent_user_id, device_ids, {})

    def load_known(
        self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str], known: Mapping[str, Any]
    ) -> Snapshot:
        refs = [self._device_ref(agent_user_id, device_id) for device_id in device_ids]
        token_ref = self._db.collection(TOKENS).document(token_hash) if token_hash else None
        wanted = refs + ([token_ref] if token_ref is not None else [])
        # When every device is known, one read gets their versions and the token's fields only; the devices
        # that changed since are then read whole. Otherwise one read gets everything whole.
        versions_only = bool(refs) and all(device_id in known for device_id in device_ids)
        mask = TOKEN_FIELDS if versions_only else None
        found = {snap.reference.path: snap for snap in self._db.get_all(wanted, field_paths=mask)} if wanted else {}
        devices: dict[str, StoredDevice | None] = {}
        changed = []
        for device_id, ref in zip(device_ids, refs, strict=True):
            snap = found.get(ref.path)
            devices[device_id] = None
            if snap is None or not snap.exists:
                continue
            if known.get(device_id) == snap.update_time:
                devices[device_id] = StoredDevice(NOT_READ, snap.update_time)
            elif versions_only:
                changed.append(device_id)
            else:
                devices[device_id] = StoredDevice(snap.to_dict() or {}, snap.update_time)
        if changed:
            devices.update(self.load_known(None, agent_user_id, changed, {}).devices)
        token = None
        if token_ref is not None and token_hash:
            snap = found.get(token_ref.path)
            if snap is not None and snap.exists:
                token = token_from_document(token_hash, snap.to_dict() or {})
        return Snapshot(token, devices)

    def list_devices(self, agent_user_id: str) -> list[tuple[str, DeviceDocument]]:
        return [(device_id, stored.document) for device_id, stored in self.list_known(agent_user_id, {})]

    def list_known(self, agent_user_id: str, known: Mapping[str, Any]) -> list[tuple[str, StoredDevice]]:
        collection = self._db.collection(USERS).document(agent_user_id).collection(DEVICES)
        if not known:
            return [(snap.id, StoredDevice(snap.to_dict() or {}, snap.update_time)) for snap in collection.stream()]
        # The ids and versions only (the documents' names), then the devices that changed since, whole.
        listed = [(snap.id, snap.update_time) for snap in collection.select([FieldPath.document_id()]).stream()]
        changed = [device_id for device_id, version in listed if known.get(device_id) != version]
        fresh = self.load_known(None, agent_user_id, changed, {}).devices if changed else {}
        devices = []
        for device_id, version in listed:
            stored = fresh.get(device_id) if device_id in fresh else StoredDevice(NOT_READ, version)
            if stored is not None:  # None: deleted between the listing and the read
                devices.append((device_id, stored))
        return devices

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        return self.commit_known(agent_user_id, writes) is not None

    def commit_known(self, agent_user_id: str, writes: Sequence[StateWrite]) -> Mapping[str, Any] | None:
        if any(write.version is None for write in writes):
            return None  # an empty precondition is none at all: the update would create the device
        if not writes:
            return {}
        batch = self._db.batch()
        for write in writes:
            batch.update(
                self._device_ref(agent_user_id, write.device_id),
                {"state": dict(write.state)},
                option=self._db.write_option(last_update_time=write.version),
            )
        try:
            results = batch.commit()
        except (google_errors.FailedPrecondition, google_errors.Aborted, google_errors.NotFound):
            return None
        return {write.device_id: result.update_time for write, result in zip(writes, results, strict=True)}

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        user = self._db.collection(USERS).document(agent_user_id)
        user.set({"linked": True, "linkedAt": to_datetime(now_ms)}, merge=True)

    def disconnect(self, agent_user_id: str, now_ms: int, token_hash: str | None = None) -> int:
        """Revokes the grant the token `token_hash` belongs to (every grant of the user with None) by deleting its
        documents from tokens/, then marks the user unlinked unless a grant of theirs is still live. Tokens from
        before grants (no grantId) count as one grant. Returns how many documents were deleted."""
        mine = self._db.collection(TOKENS).where(filter=firestore.FieldFilter("agentUserId", "==", agent_user_id))
        deleted = delete_documents(self._db, self._grant_documents(mine, agent_user_id, token_hash))
        self.unlink_unless_a_grant_lives(agent_user_id, now_ms)
        return deleted

    def unlink_unless_a_grant_lives(self, agent_user_id: str, now_ms: int) -> bool:
        """After a grant was revoked (DISCONNECT, or account linking's replay and reuse detection): marks the user
        unlinked unless a grant of theirs is still live; True if it did. A link made meanwhile is marked linked
        again by Google's SYNC, which follows every link."""
        mine = self._db.collection(TOKENS).where(filter=firestore.FieldFilter("agentUserId", "==", agent_user_id))
        if any(_keeps_linked(snap.to_dict() or {}, now_ms) for snap in mine.stream()):
            return False
        self._db.collection(USERS).document(agent_user_id).set(
            {"linked": False, "unlinkedAt": to_datetime(now_ms)}, merge=True
        )
        return True

    def _grant_documents(self, mine: Any, agent_user_id: str, token_hash: str | None) -> list[Any]:
        """The user's token-store documents of the grant of `token_hash` (all of them for None)."""
        if token_hash is None:
            return [snap.reference for snap in mine.stream()]
        snap = self._db.collection(TOKENS).document(token_hash).get()
        data = (snap.to_dict() or {}) if snap.exists else {}
        if data.get("agentUserId") != agent_user_id:
            return []
        grant_id = data.get("grantId") or ""
        if grant_id:
            of_grant = mine.where(filter=firestore.FieldFilter("grantId", "==", grant_id))
            return [found.reference for found in of_grant.stream()]
        return [found.reference for found in mine.stream() if not (found.to_dict() or {}).get("grantId")]


# The token store's document kinds that keep a user linked: a grant's record (functions/linking/grant_store.py),
# and access and refresh tokens, for grants from before records existed and tokens issued outside any grant.
_LINKING_KINDS = ("grant", "at", "rt")


def _keeps_linked(data: dict[str, Any], now_ms: int) -> bool:
    live = data.get("kind") in _LINKING_KINDS and not data.get("revoked") and "rotatedAt" not in data
    return live and token_from_document("", data).expires_at_ms > now_ms
