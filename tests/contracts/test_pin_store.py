"""PinStore contract (functions/core/challenges.py): tests/fakes/memory.py `MemoryPinStore` against
functions/fulfillment/pin_store.py `FirestorePinStore`."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from functions.core.challenges import PinRecord, PinStore
from tests.contracts.conftest import MEMORY
from tests.fakes.memory import MemoryPinStore

NOW = 1_800_000_000_123
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$not-a-real-hash"  # stores never look inside
OTHER_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$another-one"


@pytest.fixture
def pins(backend: str, db: Any) -> PinStore:
    if backend == MEMORY:
        return MemoryPinStore()
    from functions.fulfillment.pin_store import FirestorePinStore

    return FirestorePinStore(db)


def record(pins: PinStore, device_id: str = "door", agent_user_id: str = "alice") -> PinRecord:
    found = pins.get(agent_user_id, device_id)
    assert found is not None
    return found


def test_a_device_without_a_pin_has_no_record(pins: PinStore) -> None:
    assert pins.get("alice", "door") is None


def test_a_new_pin_has_no_failures(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    found = record(pins)
    assert (found.pin_hash, found.failures, found.last_attempt_ms) == (HASH, 0, 0)
    assert found.version is not None


def test_attempts_count_up_and_note_their_time(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    assert [pins.count_attempt("alice", "door", NOW + step) for step in (1, 2, 3)] == [1, 2, 3]
    found = record(pins)
    assert (found.pin_hash, found.failures, found.last_attempt_ms) == (HASH, 3, NOW + 3)


def test_an_attempt_on_a_device_without_a_pin_counts_nothing(pins: PinStore) -> None:
    assert pins.count_attempt("alice", "door", NOW) is None
    assert pins.get("alice", "door") is None, "no record is created"


def test_concurrent_attempts_all_count(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    counts: list[int | None] = []
    start = threading.Barrier(6)

    def attempt() -> None:
        start.wait()
        counts.append(pins.count_attempt("alice", "door", NOW + 1))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(count for count in counts if count is not None) == [1, 2, 3, 4, 5, 6]
    assert record(pins).failures == 6


def test_clearing_failures_keeps_the_pin_and_the_last_attempt(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    pins.count_attempt("alice", "door", NOW + 1)
    pins.clear_failures("alice", "door")
    found = record(pins)
    assert (found.pin_hash, found.failures, found.last_attempt_ms) == (HASH, 0, NOW + 1)


def test_clearing_failures_of_a_device_without_a_pin_creates_nothing(pins: PinStore) -> None:
    pins.clear_failures("alice", "door")
    assert pins.get("alice", "door") is None


def test_every_change_moves_the_version_and_a_write_that_changes_nothing_keeps_it(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    created = record(pins).version
    pins.count_attempt("alice", "door", NOW + 1)
    counted = record(pins).version
    assert counted != created
    pins.clear_failures("alice", "door")
    cleared = record(pins).version
    assert cleared != counted
    pins.clear_failures("alice", "door")  # already 0: Firestore keeps the update time
    assert record(pins).version == cleared


def test_a_reset_on_the_version_read_clears_the_failures(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    for step in range(5):
        pins.count_attempt("alice", "door", NOW + step)
    assert pins.reset_if_unchanged("alice", "door", record(pins).version)
    found = record(pins)
    assert (found.failures, found.last_attempt_ms) == (0, NOW + 4)


def test_a_reset_on_a_version_read_before_an_attempt_changes_nothing(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    pins.count_attempt("alice", "door", NOW)
    stale = record(pins).version
    pins.count_attempt("alice", "door", NOW + 1)
    assert not pins.reset_if_unchanged("alice", "door", stale)
    assert record(pins).failures == 2


def test_a_reset_of_a_removed_pin_fails_and_creates_nothing(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    version = record(pins).version
    assert pins.remove_pin("alice", "door")
    assert not pins.reset_if_unchanged("alice", "door", version)
    assert pins.get("alice", "door") is None


def test_a_reset_without_a_version_fails_and_creates_nothing(pins: PinStore) -> None:
    """On Firestore an empty precondition is none at all: the update would create the record."""
    assert not pins.reset_if_unchanged("alice", "door", None)
    assert pins.get("alice", "door") is None


def test_setting_a_pin_again_replaces_it_and_forgets_the_failures(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    pins.count_attempt("alice", "door", NOW + 1)
    before = record(pins).version
    pins.set_pin("alice", "door", OTHER_HASH, NOW + 2)
    found = record(pins)
    assert (found.pin_hash, found.failures, found.last_attempt_ms) == (OTHER_HASH, 0, 0)
    assert found.version != before


def test_removing_a_pin_says_whether_there_was_one(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    assert pins.remove_pin("alice", "door")
    assert pins.get("alice", "door") is None
    assert not pins.remove_pin("alice", "door")


def test_pins_are_kept_per_user_and_device(pins: PinStore) -> None:
    pins.set_pin("alice", "door", HASH, NOW)
    pins.set_pin("alice", "garage", OTHER_HASH, NOW)
    pins.set_pin("bob", "door", OTHER_HASH, NOW)
    pins.count_attempt("alice", "door", NOW + 1)
    assert pins.remove_pin("bob", "door")
    assert record(pins, "door").failures == 1
    assert record(pins, "garage").failures == 0
    assert record(pins, "door").pin_hash == HASH
    assert pins.get("bob", "door") is None
