"""Firestore adapter for device PINs and their failure counters.

Layout:
    users/{agentUserId}/devicePins/{deviceId}   hash (argon2id), failures, lastAttemptAt, updatedAt

The PIN itself is never stored; the hash is in a document of its own, never in the device document that SYNC and
the CLI read. Attempts are counted with an atomic increment, so concurrent wrong PINs all count.
"""

from __future__ import annotations

import contextlib
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from functions.core.challenges import PinRecord
from functions.platform.firestore import USERS, client, to_datetime, to_ms

DEVICE_PINS = "devicePins"


class FirestorePinStore:
    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or client()

    def _ref(self, agent_user_id: str, device_id: str) -> Any:
        return self._db.collection(USERS).document(agent_user_id).collection(DEVICE_PINS).document(device_id)

    def get(self, agent_user_id: str, device_id: str) -> PinRecord | None:
        snap = self._ref(agent_user_id, device_id).get()
        if not snap.exists:
            return None
        data = snap.to_dict() or {}
        return PinRecord(
            pin_hash=str(data.get("hash", "")),
            failures=int(data.get("failures", 0)),
            last_attempt_ms=to_ms(data.get("lastAttemptAt")),
            version=snap.update_time,
        )

    def count_attempt(self, agent_user_id: str, device_id: str, now_ms: int) -> int | None:
        try:
            result = self._ref(agent_user_id, device_id).update(
                {"failures": firestore.Increment(1), "lastAttemptAt": to_datetime(now_ms)}
            )
        except google_errors.NotFound:
            return None
        # The increment is the write's only transform: its result is the count after this attempt.
        return int(result.transform_results[0].integer_value)

    def clear_failures(self, agent_user_id: str, device_id: str) -> None:
        with contextlib.suppress(google_errors.NotFound):
            self._ref(agent_user_id, device_id).update({"failures": 0})

    def reset_if_unchanged(self, agent_user_id: str, device_id: str, version: Any) -> bool:
        if version is None:
            return False  # an empty precondition is none at all: the update would create the record
        try:
            self._ref(agent_user_id, device_id).update(
                {"failures": 0}, option=self._db.write_option(last_update_time=version)
            )
        except (google_errors.FailedPrecondition, google_errors.NotFound, google_errors.Aborted):
            return False
        return True

    def set_pin(self, agent_user_id: str, device_id: str, pin_hash: str, now_ms: int) -> None:
        self._ref(agent_user_id, device_id).set({"hash": pin_hash, "failures": 0, "updatedAt": to_datetime(now_ms)})

    def remove_pin(self, agent_user_id: str, device_id: str) -> bool:
        ref = self._ref(agent_user_id, device_id)
        if not ref.get().exists:
            return False
        ref.delete()
        return True
