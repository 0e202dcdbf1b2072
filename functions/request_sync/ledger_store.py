"""Firestore side of Request Sync: the per-user coalescing ledger and the user's link state.

    requestSync/{agentUserId}   latestChangeUs, handledBeforeUs, issuedAt (commit time), issuedLocalMs, issuedBy,
                                calls, leaseOwner, leaseUntilMs, lastOutcome, updatedAt, expiresAt (TTL)
    users/{agentUserId}         linked (read: only linked == true gets calls), and on a 404 from HomeGraph:
                                linked=false, unlinkedAt, unlinkReason="homegraph_not_found"

Times ending in Us are Firestore commit times in microseconds since the epoch (exact in an int64). The issuing
write stores issuedAt as SERVER_TIMESTAMP and hands the write's own commit time (its result's update_time) to the
service, which stores that exact value with the call's result; the emulator's SERVER_TIMESTAMP is only close to it
(milliseconds, taken before the commit), so coverage never relies on the stored placeholder.
expiresAt lets a TTL policy remove the ledgers of users who stopped changing devices.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from functions.platform.firestore import USERS, client
from functions.request_sync.service import COMMIT_TIME, Ledger, Plan, Step

LEDGERS = "requestSync"
LEDGER_TTL = dt.timedelta(days=30)
UNLINK_REASON = "homegraph_not_found"
# Every event of a burst reads the same ledger document and some write it; lost races are retried at once.
MAX_WRITE_ATTEMPTS = 60
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_us(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    if isinstance(value, int):
        return value
    return 0


def ledger_from_document(data: dict[str, Any]) -> Ledger:
    return Ledger(
        latest_change_us=int(data.get("latestChangeUs") or 0),
        handled_before_us=int(data.get("handledBeforeUs") or 0),
        issued_at_us=to_us(data.get("issuedAt")),
        issued_local_ms=int(data.get("issuedLocalMs") or 0),
        issued_by=data.get("issuedBy"),
        calls=int(data.get("calls") or 0),
        lease_owner=data.get("leaseOwner"),
        lease_until_ms=int(data.get("leaseUntilMs") or 0),
        last_outcome=data.get("lastOutcome"),
    )


def ledger_document(ledger: Ledger) -> dict[str, Any]:
    issued_at: Any = (
        firestore.SERVER_TIMESTAMP
        if ledger.issued_at_us == COMMIT_TIME
        else (_EPOCH + dt.timedelta(microseconds=ledger.issued_at_us) if ledger.issued_at_us else None)
    )
    return {
        "latestChangeUs": ledger.latest_change_us,
        "handledBeforeUs": ledger.handled_before_us,
        "issuedAt": issued_at,
        "issuedLocalMs": ledger.issued_local_ms,
        "issuedBy": ledger.issued_by,
        "calls": ledger.calls,
        "leaseOwner": ledger.lease_owner,
        "leaseUntilMs": ledger.lease_until_ms,
        "lastOutcome": ledger.last_outcome,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        "expiresAt": dt.datetime.now(dt.UTC) + LEDGER_TTL,
    }


class LedgerContention(RuntimeError):
    """The ledger kept changing under us; the event is retried by Eventarc."""


class FirestoreSyncLedger:
    """SyncLedger on Firestore with optimistic concurrency: read the ledger and the user, compute the step, write
    the ledger only if it is unchanged since the read (an update with a last-update-time precondition, or a create),
    and start over if it was changed. No transaction holds locks, so a burst of events never queues on them; most
    events need no write at all. The write's result carries its commit time, which is the issuedAt it wrote."""

    def __init__(self, db: firestore.Client | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._db = db or client()
        self._sleep = sleep

    def _refs(self, agent_user_id: str) -> tuple[Any, Any]:
        return (
            self._db.collection(LEDGERS).document(agent_user_id),
            self._db.collection(USERS).document(agent_user_id),
        )

    def _read(self, refs: tuple[Any, Any]) -> tuple[Any, Ledger, bool]:
        ledger_ref, user_ref = refs
        snapshots = {snap.reference.path: snap for snap in self._db.get_all(list(refs))}
        ledger_snap, user_snap = snapshots.get(ledger_ref.path), snapshots.get(user_ref.path)
        exists = ledger_snap is not None and ledger_snap.exists
        ledger = ledger_from_document(ledger_snap.to_dict() or {}) if exists and ledger_snap else Ledger()
        linked = bool(user_snap and user_snap.exists and (user_snap.to_dict() or {}).get("linked") is True)
        return (ledger_snap if exists else None), ledger, linked

    def transact(self, agent_user_id: str, step: Step) -> tuple[Plan, int]:
        ledger_ref, user_ref = refs = self._refs(agent_user_id)
        for attempt in range(MAX_WRITE_ATTEMPTS):
            snapshot, ledger, linked = self._read(refs)
            written, plan = step(ledger, linked)
            result = None
            if written is not None:
                document = ledger_document(written)
                try:
                    if snapshot is None:
                        result = ledger_ref.create(document)
                    else:
                        option = self._db.write_option(last_update_time=snapshot.update_time)
                        result = ledger_ref.update(document, option=option)
                except (google_errors.AlreadyExists, google_errors.FailedPrecondition, google_errors.NotFound):
                    # Someone wrote the ledger since our read: read again. Jitter keeps racers apart.
                    self._sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))  # noqa: S311 - not security
                    continue
            if plan.unlink:
                user_ref.set(
                    {"linked": False, "unlinkedAt": firestore.SERVER_TIMESTAMP, "unlinkReason": UNLINK_REASON},
                    merge=True,
                )
            issued_at_us = 0
            if written is not None and written.issued_at_us == COMMIT_TIME and result is not None:
                issued_at_us = to_us(result.update_time)  # the commit time, which SERVER_TIMESTAMP wrote too
            return plan, issued_at_us
        raise LedgerContention(f"the Request Sync ledger of {agent_user_id!r} kept changing")

    def ledger(self, agent_user_id: str) -> Ledger:
        """The user's ledger as stored (operators, tests)."""
        return self._read(self._refs(agent_user_id))[1]
