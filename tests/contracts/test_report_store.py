"""ReportStore (functions/reporting/model.py) and PendingCommandStore (functions/fulfillment/backends.py) contract:
tests/fakes/memory_reporting.py `MemoryReportStore` against functions/reporting/store.py `FirestoreReportStore`.

Set-up the ports do not offer (users, devices, a device cloud writing a state directly) goes through the fake's
helpers in memory and straight to the documents on Firestore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pytest

from functions.core.commands import PUBSUB, PendingCommand
from functions.core.ports import DeviceDocument
from functions.reporting.model import REPORT_SEQ, ApplyRead, ApplyWrite, Observed, ReportStore, UserRecord
from functions.reporting.planning import FOLLOW_UP, NOTIFICATION, Event, QueueEntry
from tests.contracts.conftest import MEMORY
from tests.fakes.memory_reporting import MemoryReportStore

NOW = 1_800_000_000_123
LINKED_AT = NOW - 3_600_000
LAMP: dict[str, Any] = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Lamp"},
    "willReportState": True,
    "state": {"on": False, "brightness": 10},
    "online": True,
}


class Stores(ReportStore, Protocol):
    """Both ports, as both implementations offer them from one object."""

    def save_pending(self, pending: PendingCommand) -> None: ...


@dataclass
class Harness:
    store: Stores
    put_user: Callable[[str, bool, int], None]
    put_device: Callable[[str, str, DeviceDocument], None]
    write_state: Callable[[str, str, dict[str, Any]], None]  # a device cloud writing the document itself
    drop_entry: Callable[[str, str], None]  # a flush (of another instance) having reported a queue entry


def memory_harness() -> Harness:
    fake = MemoryReportStore()

    def put_user(agent_user_id: str, linked: bool, linked_at_ms: int) -> None:
        fake.put_user(agent_user_id, linked=linked, linked_at_ms=linked_at_ms)

    def write_state(agent_user_id: str, device_id: str, state: dict[str, Any]) -> None:
        fake.write_state(agent_user_id, device_id, state)

    def drop_entry(agent_user_id: str, entry_id: str) -> None:
        del fake.entries[(agent_user_id, entry_id)]

    return Harness(fake, put_user, fake.put_device, write_state, drop_entry)


def firestore_harness(db: Any) -> Harness:
    from functions.platform.firestore import to_datetime
    from functions.reporting.store import FirestoreReportStore

    def user_ref(agent_user_id: str) -> Any:
        return db.collection("users").document(agent_user_id)

    def put_user(agent_user_id: str, linked: bool, linked_at_ms: int) -> None:
        user_ref(agent_user_id).set({"linked": linked, "linkedAt": to_datetime(linked_at_ms)})

    def put_device(agent_user_id: str, device_id: str, document: DeviceDocument) -> None:
        user_ref(agent_user_id).collection("devices").document(device_id).set(dict(document))

    def write_state(agent_user_id: str, device_id: str, state: dict[str, Any]) -> None:
        user_ref(agent_user_id).collection("devices").document(device_id).update({"state": state})

    def drop_entry(agent_user_id: str, entry_id: str) -> None:
        user_ref(agent_user_id).collection("reportQueue").document(entry_id).delete()

    return Harness(FirestoreReportStore(db), put_user, put_device, write_state, drop_entry)


@pytest.fixture
def harness(backend: str, db: Any) -> Harness:
    found = memory_harness() if backend == MEMORY else firestore_harness(db)
    found.put_user("alice", True, LINKED_AT)
    found.put_device("alice", "lamp", LAMP)
    return found


def read(harness: Harness, entry_id: str = "e1", events: tuple[str, ...] = (), command: str | None = None) -> ApplyRead:
    return harness.store.read_for_apply("alice", "lamp", entry_id, events, command)


def user(harness: Harness, agent_user_id: str = "alice") -> UserRecord:
    found = harness.store.user(agent_user_id)
    assert found is not None
    return found


def event(event_id: str, kind: str = NOTIFICATION, expires_ms: int | None = None) -> Event:
    notifications = {"ObjectDetection": {"priority": 0, "detectionTimestamp": NOW, "objects": {"familiar": 1}}}
    return Event(event_id, "lamp", kind, notifications, NOW, expires_ms)


def entry(entry_id: str, *events: Event, device_id: str | None = "lamp", full: bool = False) -> QueueEntry:
    return QueueEntry(entry_id, device_id, NOW, full, events)


def pending(command_id: str = "cmd-1", **changes: Any) -> PendingCommand:
    found = PendingCommand(
        command_id, "alice", "lamp", "action.devices.commands.OnOff", {"on": True}, "follow-up-token", NOW, NOW + 9_000
    )
    return replace(found, **changes)


def apply_state(harness: Harness, state: dict[str, Any], seq: int = 1, **parts: Any) -> bool:
    device = read(harness).device
    assert device is not None
    write = ApplyWrite("lamp", device.version, state, report_seq=seq, **parts)
    return harness.store.commit_apply("alice", write, NOW)


# users


def test_a_user_reads_back_with_a_version_and_an_unknown_one_is_none(harness: Harness) -> None:
    found = user(harness)
    assert (found.linked, found.linked_at_ms, found.full_report_for_ms) == (True, LINKED_AT, 0)
    assert found.version is not None
    assert harness.store.user("bob") is None


def test_marking_a_user_unlinked_needs_the_record_unchanged_since_it_was_read(harness: Harness) -> None:
    stale = user(harness)
    harness.put_user("alice", True, LINKED_AT + 1)  # a SYNC (account linking) in between
    assert not harness.store.mark_unlinked("alice", stale, NOW)
    assert user(harness).linked

    fresh = user(harness)
    assert harness.store.mark_unlinked("alice", fresh, NOW)
    unlinked = user(harness)
    assert not unlinked.linked
    assert unlinked.version != fresh.version
    assert not harness.store.mark_unlinked("alice", fresh, NOW + 1), "the version read before it is stale now"


def test_queueing_the_full_report_notes_it_on_the_user(harness: Harness) -> None:
    before = user(harness)
    full = entry("full-1", device_id=None, full=True)

    assert harness.store.queue_full_report("alice", full, before)

    after = user(harness)
    assert (after.linked, after.linked_at_ms, after.full_report_for_ms) == (True, LINKED_AT, LINKED_AT)
    assert after.version != before.version
    assert harness.store.queue("alice", 10) == [full]


def test_the_full_report_is_queued_only_if_the_user_is_unchanged_and_the_entry_new(harness: Harness) -> None:
    stale = user(harness)
    harness.put_user("alice", True, LINKED_AT + 1)
    assert not harness.store.queue_full_report("alice", entry("full-1", device_id=None, full=True), stale)
    assert harness.store.queue("alice", 10) == []
    assert user(harness).full_report_for_ms == 0

    harness.store.queue_full_report("alice", entry("full-1", device_id=None, full=True), user(harness))
    assert not harness.store.queue_full_report("alice", entry("full-1", device_id=None), user(harness))
    assert harness.store.queue("alice", 10) == [entry("full-1", device_id=None, full=True)]


# reading for apply


def test_a_read_of_nothing_stored_finds_nothing(harness: Harness) -> None:
    found = harness.store.read_for_apply("bob", "lamp", "e1", ("ev-1",), "cmd-1")
    assert found == ApplyRead(user=None, device=None, observed=Observed(), entry_exists=False)


def test_a_read_finds_the_user_the_device_and_what_applying_wrote(harness: Harness) -> None:
    harness.store.save_pending(pending())
    before = read(harness, command="cmd-1")
    assert before.user == user(harness)
    assert before.device is not None
    assert before.device.document == LAMP
    assert before.observed == Observed()
    assert before.pending == pending()
    assert before.pending_version is not None

    write = ApplyWrite(
        "lamp",
        before.device.version,
        {"on": True, "brightness": 10},
        report_seq=3,
        observed_at_ms=NOW - 5,
        entry=entry("e1", event("ev-1")),
        seen_events=("ev-1",),
        completed_command=("cmd-1", before.pending_version, "e1"),
    )
    assert harness.store.commit_apply("alice", write, NOW)

    after = read(harness, events=("ev-1", "ev-2"), command="cmd-1")
    assert after.device is not None
    assert after.device.document == {**LAMP, "state": {"on": True, "brightness": 10}, REPORT_SEQ: 3}
    assert after.device.version != before.device.version
    assert after.observed.observed_at_ms == NOW - 5
    assert after.observed.version is not None
    assert after.entry_exists
    assert after.seen_events == frozenset({"ev-1"})
    assert after.pending == replace(pending(), completed_by="e1")
    assert after.pending_version != before.pending_version


# committing an apply


def test_an_apply_replaces_the_state_and_sets_online_only_when_given(harness: Harness) -> None:
    assert apply_state(harness, {"on": True}, seq=1)
    device = read(harness).device
    assert device is not None
    assert device.document == {**LAMP, "state": {"on": True}, REPORT_SEQ: 1}
    assert apply_state(harness, {"on": True}, seq=2, online=False)
    device = read(harness).device
    assert device is not None
    assert device.document == {**LAMP, "state": {"on": True}, REPORT_SEQ: 2, "online": False}


def test_an_apply_on_a_device_version_read_before_a_direct_write_writes_nothing(harness: Harness) -> None:
    stale = read(harness)
    assert stale.device is not None
    harness.write_state("alice", "lamp", {"on": True, "brightness": 99})
    write = ApplyWrite("lamp", stale.device.version, {"on": False}, report_seq=1, observed_at_ms=NOW, entry=entry("e1"))

    assert not harness.store.commit_apply("alice", write, NOW)

    after = read(harness)
    assert after.device is not None
    assert after.device.document["state"] == {"on": True, "brightness": 99}
    assert after.observed == Observed(), "all or nothing"
    assert not after.entry_exists


def test_the_first_observed_time_is_created_and_later_ones_need_its_version(harness: Harness) -> None:
    first = ApplyWrite("lamp", observed_at_ms=NOW)
    assert harness.store.commit_apply("alice", first, NOW)
    assert not harness.store.commit_apply("alice", ApplyWrite("lamp", observed_at_ms=NOW + 1), NOW), "it exists"

    observed = read(harness).observed
    assert observed.observed_at_ms == NOW
    later = ApplyWrite("lamp", observed_version=observed.version, observed_at_ms=NOW + 2)
    assert harness.store.commit_apply("alice", later, NOW)
    assert read(harness).observed.observed_at_ms == NOW + 2
    assert not harness.store.commit_apply("alice", later, NOW), "its version is stale now"


def test_an_apply_fails_on_an_entry_that_exists_or_an_event_announced_before(harness: Harness) -> None:
    assert harness.store.commit_apply("alice", ApplyWrite("lamp", entry=entry("e1"), seen_events=("ev-1",)), NOW)

    again = ApplyWrite("lamp", observed_at_ms=NOW, entry=entry("e1"))
    assert not harness.store.commit_apply("alice", again, NOW)
    announced = ApplyWrite("lamp", observed_at_ms=NOW, entry=entry("e2"), seen_events=("ev-2", "ev-1"))
    assert not harness.store.commit_apply("alice", announced, NOW)

    after = read(harness, "e2", ("ev-1", "ev-2"))
    assert (after.entry_exists, after.seen_events, after.observed) == (False, frozenset({"ev-1"}), Observed())
    assert harness.store.commit_apply("bob", ApplyWrite("lamp", entry=entry("e1"), seen_events=("ev-1",)), NOW), (
        "entries and events are per user"
    )


def test_completing_a_command_needs_its_version_unchanged(harness: Harness) -> None:
    harness.store.save_pending(pending())
    stale = read(harness, command="cmd-1").pending_version
    harness.store.save_pending(pending(params={"on": False}))  # the command was saved again meanwhile

    write = ApplyWrite("lamp", entry=entry("e1"), completed_command=("cmd-1", stale, "e1"))
    assert not harness.store.commit_apply("alice", write, NOW)
    after = read(harness, command="cmd-1")
    assert after.pending == pending(params={"on": False})
    assert not after.entry_exists


def test_an_apply_without_the_version_of_what_it_updates_writes_nothing(harness: Harness) -> None:
    """On Firestore an empty precondition is none at all: the update would create the document."""
    no_device = ApplyWrite("radio", None, {"on": True}, report_seq=1, entry=entry("e1"))
    assert not harness.store.commit_apply("alice", no_device, NOW)
    assert harness.store.read_for_apply("alice", "radio", "e1", (), None).device is None
    assert not read(harness).entry_exists, "all or nothing"

    no_command = ApplyWrite("lamp", entry=entry("e1"), completed_command=("cmd-1", None, "e1"))
    assert not harness.store.commit_apply("alice", no_command, NOW)
    after = read(harness, command="cmd-1")
    assert (after.pending, after.entry_exists) == (None, False)


def test_an_empty_apply_succeeds(harness: Harness) -> None:
    assert harness.store.commit_apply("alice", ApplyWrite("lamp"), NOW)


def test_an_apply_that_changes_nothing_keeps_the_device_version(harness: Harness) -> None:
    """Firestore keeps a document's update time when a write leaves it as it was."""
    assert apply_state(harness, {"on": True}, seq=1)
    before = read(harness).device
    assert before is not None
    assert apply_state(harness, {"on": True}, seq=1)
    after = read(harness).device
    assert after is not None
    assert after.version == before.version


# the queue


def test_the_queue_lists_a_users_entries_in_id_order_up_to_the_limit(harness: Harness) -> None:
    follow_up = event("ev-2", FOLLOW_UP, expires_ms=NOW + 60_000)
    queued = [entry("e3"), entry("e1", event("ev-1"), follow_up), entry("e2", device_id=None, full=True)]
    for one in queued:
        assert harness.store.commit_apply("alice", ApplyWrite("lamp", entry=one), NOW)
    harness.store.commit_apply("bob", ApplyWrite("lamp", entry=entry("e0")), NOW)

    assert harness.store.queue("alice", 10) == [queued[1], queued[2], queued[0]]
    assert harness.store.queue("alice", 2) == [queued[1], queued[2]]
    assert harness.store.entry_exists("alice", "e2")
    assert not harness.store.entry_exists("alice", "e0")
    assert harness.store.queue("carol", 10) == []


# flushing


def test_a_flush_read_of_all_devices_gives_each_with_what_was_reported(harness: Harness) -> None:
    harness.put_device("alice", "a-lock", {**LAMP, "state": {"isLocked": True}})
    harness.store.commit_flush("alice", {"lamp": {"on": False}, "gone": {"on": True}}, [], {}, NOW)

    found_user, views = harness.store.flush_read("alice", None)

    assert found_user == user(harness)
    assert list(views) == ["a-lock", "lamp"], "devices in id order; a reported record alone is no device"
    assert views["lamp"] == (LAMP, {"on": False})
    assert views["a-lock"] == ({**LAMP, "state": {"isLocked": True}}, {})


def test_a_flush_read_of_named_devices_gives_none_for_a_missing_one(harness: Harness) -> None:
    harness.store.commit_flush("alice", {"gone": {"on": True}}, [], {}, NOW)
    found_user, views = harness.store.flush_read("alice", {"lamp", "gone"})
    assert found_user == user(harness)
    assert views == {"gone": (None, {"on": True}), "lamp": (LAMP, {})}
    assert harness.store.flush_read("bob", {"lamp"}) == (None, {"lamp": (None, {})})


def test_a_flush_replaces_what_was_reported_deletes_done_entries_and_shortens_others(harness: Harness) -> None:
    for one in [entry("e1", event("ev-1")), entry("e2", event("ev-2"), event("ev-3")), entry("e3")]:
        harness.store.commit_apply("alice", ApplyWrite("lamp", entry=one), NOW)
    harness.store.commit_flush("alice", {"lamp": {"on": False, "brightness": 10}}, [], {}, NOW)

    harness.store.commit_flush("alice", {"lamp": {"on": True}}, ["e1", "e3"], {"e2": (event("ev-3"),)}, NOW + 1)

    assert harness.store.flush_read("alice", {"lamp"})[1] == {"lamp": (LAMP, {"on": True})}
    assert harness.store.queue("alice", 10) == [entry("e2", event("ev-3"))]


def test_a_flush_does_not_bring_back_an_entry_deleted_meanwhile(harness: Harness) -> None:
    harness.store.commit_apply("alice", ApplyWrite("lamp", entry=entry("e1", event("ev-1"), event("ev-2"))), NOW)
    harness.store.commit_flush("alice", {}, ["e1"], {}, NOW)  # another flush covered it

    harness.store.commit_flush("alice", {"lamp": {"on": True}}, [], {"e1": (event("ev-2"),)}, NOW + 1)

    assert harness.store.queue("alice", 10) == []
    assert harness.store.flush_read("alice", {"lamp"})[1] == {"lamp": (LAMP, {"on": True})}, "the rest is written"


def test_a_flush_shortens_the_entries_left_when_another_was_deleted_meanwhile(harness: Harness) -> None:
    queued = [entry("e1", event("ev-1")), entry("e2", event("ev-2"), event("ev-3")), entry("e3"), entry("e4")]
    for one in queued:
        harness.store.commit_apply("alice", ApplyWrite("lamp", entry=one), NOW)
    harness.store.commit_flush("alice", {}, ["e1", "e3"], {}, NOW)  # another flush covered e1 and e3

    remaining = {"e1": (), "e2": (event("ev-3"),), "e3": (event("ev-9"),)}
    harness.store.commit_flush("alice", {"lamp": {"on": True}}, ["e4"], remaining, NOW + 1)

    assert harness.store.queue("alice", 10) == [entry("e2", event("ev-3"))], "e1 and e3 are not brought back"
    assert harness.store.flush_read("alice", {"lamp"})[1] == {"lamp": (LAMP, {"on": True})}, "the rest is written"


# the user's lease


def test_a_free_lease_is_granted_and_a_live_one_is_refused_with_its_end(harness: Harness) -> None:
    assert harness.store.try_lease("alice", "owner-a", NOW, NOW + 60_000) == 0
    assert harness.store.try_lease("alice", "owner-b", NOW + 1, NOW + 60_001) == NOW + 60_000
    assert harness.store.peek("alice", [], NOW + 1) == (set(), NOW + 60_000)
    assert harness.store.try_lease("bob", "owner-b", NOW, NOW + 5) == 0, "leases are per user"


def test_the_holder_renews_its_lease(harness: Harness) -> None:
    harness.store.try_lease("alice", "owner-a", NOW, NOW + 60_000)
    assert harness.store.try_lease("alice", "owner-a", NOW + 10, NOW + 90_000) == 0
    assert harness.store.peek("alice", [], NOW + 70_000) == (set(), NOW + 90_000)
    assert harness.store.try_lease("alice", "owner-b", NOW + 70_000, NOW + 99_000) == NOW + 90_000


def test_an_expired_lease_goes_to_the_next_owner_and_the_old_one_is_refused(harness: Harness) -> None:
    harness.store.try_lease("alice", "owner-a", NOW, NOW + 60_000)
    assert harness.store.peek("alice", [], NOW + 60_000) == (set(), 0), "a lease ends at its until"
    assert harness.store.try_lease("alice", "owner-b", NOW + 60_000, NOW + 120_000) == 0
    # The fake names the new holder's end; Firestore's lost compare-and-set says "look again soon": both refuse.
    assert harness.store.try_lease("alice", "owner-a", NOW + 60_001, NOW + 120_001) > NOW + 60_001
    assert harness.store.peek("alice", [], NOW + 60_001) == (set(), NOW + 120_000)


def test_only_the_holder_releases_a_lease(harness: Harness) -> None:
    harness.store.try_lease("alice", "owner-a", NOW, NOW + 60_000)
    harness.store.release_lease("alice", "owner-b")
    assert harness.store.peek("alice", [], NOW) == (set(), NOW + 60_000)
    harness.store.release_lease("alice", "owner-a")
    assert harness.store.peek("alice", [], NOW) == (set(), 0)
    assert harness.store.try_lease("alice", "owner-b", NOW, NOW + 5) == 0


def test_peek_says_which_entries_are_still_queued(harness: Harness) -> None:
    for entry_id in ["e1", "e2"]:
        harness.store.commit_apply("alice", ApplyWrite("lamp", entry=entry(entry_id)), NOW)
    harness.store.commit_flush("alice", {}, ["e1"], {}, NOW)
    assert harness.store.peek("alice", ["e1", "e2", "e9"], NOW) == ({"e2"}, 0)
    assert harness.store.peek("alice", [], NOW) == (set(), 0)


# pending commands


def test_a_saved_pending_command_reads_back_equal_and_saving_again_replaces_it(harness: Harness) -> None:
    command = pending(backend=PUBSUB, due_ms=NOW + 2_000, params={"on": True, "nested": {"level": [1, 2]}})
    harness.store.save_pending(command)
    first = read(harness, command="cmd-1")
    assert first.pending == command

    harness.store.save_pending(replace(command, completed_by="e7"))
    second = read(harness, command="cmd-1")
    assert second.pending == replace(command, completed_by="e7")
    assert second.pending_version != first.pending_version
    assert read(harness, command="cmd-2").pending is None


def test_the_sweep_finds_the_commands_past_their_give_up_time_nobody_completed(harness: Harness) -> None:
    harness.store.save_pending(pending("overdue", give_up_ms=NOW - 1))
    harness.store.save_pending(pending("not-yet", give_up_ms=NOW + 1))
    harness.store.save_pending(pending("never", give_up_ms=None))
    harness.store.save_pending(pending("done", give_up_ms=NOW - 1, completed_by="e-result"))
    found = harness.store.overdue_pending(NOW, 10)
    assert [(command.command_id, command.completed_by) for command, _ in found] == [("overdue", None)]
    assert harness.store.overdue_pending(NOW, 0) == []


def test_a_give_up_with_a_follow_up_is_found_again_until_its_entry_is_reported(harness: Harness) -> None:
    harness.store.save_pending(pending("overdue", give_up_ms=NOW - 1))
    [(command, version)] = harness.store.overdue_pending(NOW, 10)
    failure = entry("e-timeout", event("f1", FOLLOW_UP, NOW + 9_000))
    assert harness.store.give_up_pending(command, version, failure, NOW)
    assert harness.store.entry_exists("alice", "e-timeout")
    # Its report was deferred: the next sweep finds it, completed by its queued entry.
    [(again, _)] = harness.store.overdue_pending(NOW + 60_000, 10)
    assert (again.command_id, again.completed_by) == ("overdue", "e-timeout")
    harness.drop_entry("alice", "e-timeout")
    assert harness.store.overdue_pending(NOW + 120_000, 10) == []
    assert read(harness, command="overdue").pending == replace(command, completed_by="e-timeout", give_up_ms=None)


def test_a_give_up_without_a_follow_up_is_not_found_again(harness: Harness) -> None:
    harness.store.save_pending(pending("overdue", token=None, give_up_ms=NOW - 1))
    [(command, version)] = harness.store.overdue_pending(NOW, 10)
    assert harness.store.give_up_pending(command, version, None, NOW)
    assert harness.store.overdue_pending(NOW + 60_000, 10) == []


def test_a_command_that_changed_since_the_sweep_read_it_is_not_given_up(harness: Harness) -> None:
    harness.store.save_pending(pending("overdue", give_up_ms=NOW - 1))
    [(command, version)] = harness.store.overdue_pending(NOW, 10)
    harness.store.save_pending(replace(command, completed_by="e-result"))  # its result came meanwhile
    assert not harness.store.give_up_pending(command, version, entry("e-timeout"), NOW)
    assert not harness.store.entry_exists("alice", "e-timeout")
    assert read(harness, command="overdue").pending == replace(command, completed_by="e-result", give_up_ms=None)


def test_a_pending_command_belongs_to_its_user(harness: Harness) -> None:
    harness.store.save_pending(pending())
    assert harness.store.read_for_apply("bob", "lamp", "e1", (), "cmd-1").pending is None
    harness.store.save_pending(pending(agent_user_id="bob", params={"on": False}))
    assert harness.store.read_for_apply("bob", "lamp", "e1", (), "cmd-1").pending == pending(
        agent_user_id="bob", params={"on": False}
    )
    assert read(harness, command="cmd-1").pending == pending()
