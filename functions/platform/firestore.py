"""The Firestore client, shared by every feature, and the store of access and refresh tokens.

Layout:
    users/{agentUserId}                      linked, linkedAt, unlinkedAt
    users/{agentUserId}/devices/{deviceId}   the device document (see functions.core.device)
    tokens/{sha256 of the token}             kind, agentUserId, clientId, expiresAt (TTL), revoked, createdAt
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from functions.core.tokens import TokenRecord
from functions.platform import config
from functions.platform.failures import lost_every_attempt

USERS = "users"
DEVICES = "devices"
TOKENS = "tokens"
# Firestore refuses more than 500 writes in one batch.
BATCH_LIMIT = 500

T = TypeVar("T")

_client: firestore.Client | None = None
_client_lock = threading.Lock()


def delete_documents(db: firestore.Client, refs: Sequence[Any]) -> int:
    """Deletes the documents, in batches of what Firestore allows; returns how many."""
    for start in range(0, len(refs), BATCH_LIMIT):
        batch = db.batch()
        for ref in refs[start : start + BATCH_LIMIT]:
            batch.delete(ref)
        batch.commit()
    return len(refs)


def delete_all(db: firestore.Client, query: Any) -> int:
    """Deletes what the query finds, a batch at a time; returns how many."""
    deleted = 0
    while refs := [snap.reference for snap in query.limit(BATCH_LIMIT).stream()]:
        deleted += delete_documents(db, refs)
    return deleted


def reset_after_fork() -> None:
    """Forgets the client and its lock, for a forked process whose parent was building it (see the fulfillment's
    wiring)."""
    global _client, _client_lock
    _client, _client_lock = None, threading.Lock()


def client() -> firestore.Client:
    """One client per process: it keeps its channel open across invocations."""
    global _client
    with _client_lock:
        if _client is None:
            _client = firestore.Client(project=config.project_id(), database=config.firestore_database())
        return _client


def run_transaction(
    db: firestore.Client, work: Callable[[Any], T], winner_seen: Callable[[], bool], as_the_loser: T
) -> T:
    """Runs `work` (a @firestore.transactional function) in a new transaction. When every attempt lost to
    concurrent transactions and `winner_seen()` (read afterwards) shows what the winner did, the answer is
    `as_the_loser`; otherwise the failure is raised (platform/failures: 503, try again; nothing was written)."""
    try:
        return work(db.transaction())
    except (ValueError, google_errors.Aborted) as gave_up:
        if lost_every_attempt(gave_up) and winner_seen():
            return as_the_loser
        raise


def to_datetime(epoch_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)


def to_ms(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value)
    return 0


def token_from_document(token_hash: str, data: dict[str, Any]) -> TokenRecord:
    return TokenRecord(
        token_hash=token_hash,
        kind=str(data.get("kind", "")),
        agent_user_id=str(data.get("agentUserId", "")),
        expires_at_ms=to_ms(data.get("expiresAt")),
        revoked=bool(data.get("revoked", False)),
        client_id=data.get("clientId"),
    )


def token_document(record: TokenRecord, now_ms: int) -> dict[str, Any]:
    return {
        "kind": record.kind,
        "agentUserId": record.agent_user_id,
        "clientId": record.client_id,
        "expiresAt": to_datetime(record.expires_at_ms),
        "revoked": record.revoked,
        "createdAt": to_datetime(now_ms),
    }


class FirestoreTokenStore:
    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or client()

    def save(self, record: TokenRecord, now_ms: int | None = None) -> None:
        created = now_ms if now_ms is not None else int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        self._db.collection(TOKENS).document(record.token_hash).set(token_document(record, created))

    def get(self, token_hash: str) -> TokenRecord | None:
        snapshot = self._db.collection(TOKENS).document(token_hash).get()
        return token_from_document(token_hash, snapshot.to_dict() or {}) if snapshot.exists else None
