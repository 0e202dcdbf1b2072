"""The Request Sync ledger on the Firestore emulator: compare-and-set under contention, commit times, unlinking."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from functions.request_sync.ledger_store import FirestoreSyncLedger
from functions.request_sync.service import (
    COMMIT_TIME,
    ISSUE,
    JOINED,
    OWN,
    Ledger,
    Plan,
    Settings,
    on_change,
    on_result,
    on_wake,
)

pytestmark = pytest.mark.emulator
SETTINGS = Settings(window_s=5.0)


@pytest.fixture
def ledger(firestore_db: Any) -> FirestoreSyncLedger:
    firestore_db.collection("users").document("alice").set({"linked": True})
    return FirestoreSyncLedger(firestore_db)


def now_ms() -> int:
    return int(time.time() * 1000)


def commit_of(firestore_db: Any) -> int:
    """A real device write's commit time, in microseconds."""
    result = (
        firestore_db.collection("users")
        .document("alice")
        .collection("devices")
        .document("d")
        .set({"x": time.time_ns()})
    )
    ts = result.update_time
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


def test_concurrent_changes_elect_exactly_one_owner(ledger: FirestoreSyncLedger, firestore_db: Any) -> None:
    changes = [commit_of(firestore_db) for _ in range(3)]
    plans: list[str] = []
    lock = threading.Lock()

    def event(index: int) -> None:
        plan, _ = ledger.transact(
            "alice",
            lambda state, linked: on_change(
                state,
                linked=linked,
                change_us=changes[index % 3],
                owner=f"e{index}",
                now_ms=now_ms(),
                settings=SETTINGS,
            ),
        )
        with lock:
            plans.append(plan.action)

    threads = [threading.Thread(target=event, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(plans)) == [JOINED, OWN]
    assert plans.count(OWN) == 1
    stored = ledger.ledger("alice")
    assert stored.latest_change_us == max(changes)
    assert stored.lease_owner is not None


def test_issuing_records_the_commit_time_of_its_own_write(ledger: FirestoreSyncLedger, firestore_db: Any) -> None:
    change = commit_of(firestore_db)
    ledger.transact(
        "alice",
        lambda s, linked: on_change(s, linked=linked, change_us=change, owner="o", now_ms=now_ms(), settings=SETTINGS),
    )
    plan, issued_at_us = ledger.transact(
        "alice", lambda s, linked: on_wake(s, linked=linked, owner="o", now_ms=now_ms(), settings=SETTINGS)
    )
    assert plan == Plan(ISSUE)
    later = commit_of(firestore_db)
    assert change < issued_at_us < later  # the store's own clock orders the call among the writes
    assert ledger.ledger("alice").calls == 1
    ledger.transact(
        "alice",
        lambda s, _linked: on_result(
            s, owner="o", issued_at_us=issued_at_us, outcome="ok", now_ms=now_ms(), settings=SETTINGS
        ),
    )
    stored = ledger.ledger("alice")
    assert stored.issued_at_us == stored.handled_before_us == issued_at_us != COMMIT_TIME


def test_not_found_marks_the_user_unlinked(ledger: FirestoreSyncLedger, firestore_db: Any) -> None:
    ledger.transact(
        "alice",
        lambda s, linked: on_change(s, linked=linked, change_us=10, owner="o", now_ms=now_ms(), settings=SETTINGS),
    )
    plan, _ = ledger.transact(
        "alice",
        lambda s, _linked: on_result(
            s, owner="o", issued_at_us=20, outcome="not_found", now_ms=now_ms(), settings=SETTINGS
        ),
    )
    assert plan.unlink
    user = firestore_db.collection("users").document("alice").get().to_dict()
    assert user["linked"] is False
    assert user["unlinkReason"] == "homegraph_not_found"
    assert ledger.ledger("alice") == Ledger(
        latest_change_us=10, handled_before_us=20, last_outcome="not_found", lease_owner=None
    )


def test_users_without_a_linked_flag_are_not_linked(ledger: FirestoreSyncLedger, firestore_db: Any) -> None:
    firestore_db.collection("users").document("bob").set({"linkedAt": 1})

    def step(state: Ledger, linked: bool) -> tuple[Ledger | None, Plan]:
        return on_change(state, linked=linked, change_us=10, owner="o", now_ms=now_ms(), settings=SETTINGS)

    assert ledger.transact("bob", step)[0].action == "not_linked"
    assert ledger.transact("carol", step)[0].action == "not_linked"
