"""The fulfillment's Firestore stores: the devices Google reads and commands, and the user's link state.

Layout:
    users/{agentUserId}                      linked, linkedAt, unlinkedAt
    users/{agentUserId}/devices/{deviceId}   the device document (see functions.core.device)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from functions.core.ports import DeviceDocument, Snapshot, StateWrite, StoredDevice
from functions.platform.firestore import BATCH_LIMIT, DEVICES, TOKENS, USERS, client, to_datetime, token_from_document


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
    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or client()

    def _device_ref(self, agent_user_id: str, device_id: str) -> Any:
        return self._db.collection(USERS).document(agent_user_id).collection(DEVICES).document(device_id)

    def load(self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str]) -> Snapshot:
        refs = [self._device_ref(agent_user_id, device_id) for device_id in device_ids]
        token_ref = self._db.collection(TOKENS).document(token_hash) if token_hash else None
        wanted = refs + ([token_ref] if token_ref is not None else [])
        by_path = {snap.reference.path: snap for snap in self._db.get_all(wanted)} if wanted else {}
        devices: dict[str, StoredDevice | None] = {}
        for device_id, ref in zip(device_ids, refs, strict=True):
            snap = by_path.get(ref.path)
            devices[device_id] = StoredDevice(snap.to_dict() or {}, snap.update_time) if snap and snap.exists else None
        token = None
        if token_ref is not None and token_hash:
            snap = by_path.get(token_ref.path)
            if snap is not None and snap.exists:
                token = token_from_document(token_hash, snap.to_dict() or {})
        return Snapshot(token, devices)

    def list_devices(self, agent_user_id: str) -> list[tuple[str, DeviceDocument]]:
        collection = self._db.collection(USERS).document(agent_user_id).collection(DEVICES)
        return [(snap.id, snap.to_dict() or {}) for snap in collection.stream()]

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        if any(write.version is None for write in writes):
            return False  # an empty precondition is none at all: the update would create the device
        batch = self._db.batch()
        for write in writes:
            batch.update(
                self._device_ref(agent_user_id, write.device_id),
                {"state": dict(write.state)},
                option=self._db.write_option(last_update_time=write.version),
            )
        try:
            batch.commit()
        except (google_errors.FailedPrecondition, google_errors.Aborted, google_errors.NotFound):
            return False
        return True

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        user = self._db.collection(USERS).document(agent_user_id)
        user.set({"linked": True, "linkedAt": to_datetime(now_ms)}, merge=True)

    def disconnect(self, agent_user_id: str, now_ms: int) -> int:
        """Deletes every token of the user (all kinds), then marks the user unlinked."""
        revoked = 0
        query = self._db.collection(TOKENS).where(filter=firestore.FieldFilter("agentUserId", "==", agent_user_id))
        while True:
            refs = [snap.reference for snap in query.limit(BATCH_LIMIT).stream()]
            if not refs:
                break
            batch = self._db.batch()
            for ref in refs:
                batch.delete(ref)
            batch.commit()
            revoked += len(refs)
        self._db.collection(USERS).document(agent_user_id).set(
            {"linked": False, "unlinkedAt": to_datetime(now_ms)}, merge=True
        )
        return revoked
