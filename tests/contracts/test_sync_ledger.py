"""SyncLedger contract (functions/request_sync/service.py): tests/fakes/memory_sync.py `MemorySyncLedger` against
functions/request_sync/ledger_store.py `FirestoreSyncLedger`.

What a test needs besides the port: marking a user linked (the fake's `linked`, users/{u}.linked on Firestore) and
a device change's commit time (the fake's clock, a real write's update time on Firestore).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from functions.request_sync.service import COMMIT_TIME, ISSUE, JOINED, Ledger, Plan, SyncLedger
from tests.contracts.conftest import MEMORY
from tests.fakes.memory_sync import MemorySyncLedger

NOW_MS = 1_800_000_000_123
FULL = Ledger(
    latest_change_us=1_800_000_000_123_456,
    handled_before_us=1_800_000_000_000_001,
    issued_at_us=1_799_999_999_999_999,
    issued_local_ms=NOW_MS - 1,
    issued_by="owner-1",
    calls=7,
    lease_owner="owner-2",
    lease_until_ms=NOW_MS + 55_000,
    last_outcome="ok",
)


@dataclass
class Harness:
    ledger: SyncLedger
    link: Callable[[str, bool], None]
    change_committed_us: Callable[[], int]  # a device write committing now: its commit time


@pytest.fixture
def harness(backend: str, db: Any) -> Harness:
    if backend == MEMORY:
        fake = MemorySyncLedger()
        return Harness(fake, fake.linked.__setitem__, fake.commit_time_us)
    from functions.request_sync.ledger_store import FirestoreSyncLedger, to_us

    def link(agent_user_id: str, linked: bool) -> None:
        db.collection("users").document(agent_user_id).set({"linked": linked}, merge=True)

    counter = iter(range(1, 1_000_000))

    def change_committed_us() -> int:
        device = db.collection("users").document("alice").collection("devices").document("lamp")
        return to_us(device.set({"change": next(counter)}).update_time)

    return Harness(FirestoreSyncLedger(db), link, change_committed_us)


def seen(ledger: SyncLedger, agent_user_id: str = "alice") -> tuple[Ledger, bool]:
    """What a step is given now: the user's ledger and link state (and nothing written)."""
    found: list[tuple[Ledger, bool]] = []

    def look(current: Ledger, linked: bool) -> tuple[Ledger | None, Plan]:
        found.append((current, linked))
        return None, Plan("look")

    assert ledger.transact(agent_user_id, look) == (Plan("look"), 0)
    return found[-1]


def write(ledger: Ledger, plan: Plan | None = None) -> Callable[[Ledger, bool], tuple[Ledger | None, Plan]]:
    return lambda _current, _linked: (ledger, plan or Plan(JOINED))


def test_a_user_without_a_ledger_starts_from_an_empty_one_unlinked(harness: Harness) -> None:
    assert seen(harness.ledger) == (Ledger(), False)


def test_the_step_sees_whether_the_user_is_linked(harness: Harness) -> None:
    harness.link("alice", True)
    assert seen(harness.ledger) == (Ledger(), True)
    assert seen(harness.ledger, "bob") == (Ledger(), False)
    harness.link("alice", False)
    assert seen(harness.ledger) == (Ledger(), False)


def test_a_written_ledger_is_what_the_next_step_sees(harness: Harness) -> None:
    plan = Plan(JOINED, at_ms=NOW_MS + 5)
    assert harness.ledger.transact("alice", write(FULL, plan)) == (plan, 0), "no commit time asked for: 0"
    assert seen(harness.ledger) == (FULL, False)
    assert seen(harness.ledger, "bob") == (Ledger(), False), "ledgers are per user"


def test_a_ledger_can_be_written_back_to_its_defaults(harness: Harness) -> None:
    harness.ledger.transact("alice", write(FULL))
    harness.ledger.transact("alice", write(replace(Ledger(), calls=FULL.calls)))
    assert seen(harness.ledger)[0] == Ledger(calls=FULL.calls)


def test_the_commit_time_written_is_returned_and_follows_earlier_commits(harness: Harness) -> None:
    harness.link("alice", True)
    before = harness.change_committed_us()

    plan, issued_at = harness.ledger.transact("alice", write(replace(FULL, issued_at_us=COMMIT_TIME), Plan(ISSUE)))

    assert plan == Plan(ISSUE)
    assert issued_at > before
    after = harness.change_committed_us()
    assert after > issued_at
    stored = seen(harness.ledger)[0]
    assert stored == replace(FULL, issued_at_us=stored.issued_at_us)
    # The emulator's stored SERVER_TIMESTAMP is close to the returned commit time, not equal (see ledger_store.py).
    assert abs(stored.issued_at_us - issued_at) < 1_000_000
    _, again = harness.ledger.transact("alice", write(replace(FULL, issued_at_us=COMMIT_TIME), Plan(ISSUE)))
    assert again > after


def test_an_unlink_plan_marks_the_user_unlinked_with_or_without_a_write(harness: Harness) -> None:
    harness.link("alice", True)
    harness.link("bob", True)

    assert harness.ledger.transact("alice", write(FULL, Plan("done", unlink=True))) == (Plan("done", unlink=True), 0)
    assert seen(harness.ledger) == (FULL, False)

    nothing_written = harness.ledger.transact("bob", lambda _ledger, _linked: (None, Plan("done", unlink=True)))
    assert nothing_written == (Plan("done", unlink=True), 0)
    assert seen(harness.ledger, "bob") == (Ledger(), False)


def test_a_ledger_written_while_the_step_ran_makes_it_run_again(harness: Harness) -> None:
    """The compare-and-set: another instance's write between this step's read and its write wins, and this
    step is computed again on it, so neither update is lost."""
    runs: list[Ledger] = []

    def step(current: Ledger, _linked: bool) -> tuple[Ledger | None, Plan]:
        runs.append(current)
        if len(runs) == 1:  # another instance writes meanwhile
            harness.ledger.transact("alice", lambda other, _: (replace(other, latest_change_us=42), Plan(JOINED)))
        return replace(current, calls=current.calls + 1), Plan(ISSUE)

    assert harness.ledger.transact("alice", step) == (Plan(ISSUE), 0)

    assert runs == [Ledger(), Ledger(latest_change_us=42)]
    assert seen(harness.ledger)[0] == Ledger(latest_change_us=42, calls=1)


def test_a_step_that_writes_nothing_is_not_run_again(harness: Harness) -> None:
    runs: list[Ledger] = []

    def step(current: Ledger, _linked: bool) -> tuple[Ledger | None, Plan]:
        runs.append(current)
        if len(runs) == 1:
            harness.ledger.transact("alice", write(FULL))
        return None, Plan("covered")

    assert harness.ledger.transact("alice", step) == (Plan("covered"), 0)
    assert runs == [Ledger()]


def test_concurrent_transactions_lose_no_update(harness: Harness) -> None:
    start = threading.Barrier(4)

    def count_one() -> None:
        start.wait()
        harness.ledger.transact("alice", lambda current, _: (replace(current, calls=current.calls + 1), Plan(JOINED)))

    threads = [threading.Thread(target=count_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen(harness.ledger)[0].calls == 4
