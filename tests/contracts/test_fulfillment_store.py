"""FulfillmentStore and TokenStore contract: tests/fakes/memory.py `MemoryStore` against the Firestore adapters
(functions/fulfillment/store.py `FirestoreFulfillmentStore`, functions/platform/firestore.py `FirestoreTokenStore`).

The fake plays both ports at once (one object holds devices and tokens); on Firestore they share the tokens/
collection, so a token saved through the TokenStore is what `load` and `disconnect` see.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from functions.core import tokens
from functions.core.ports import DeviceDocument, FulfillmentStore, StateWrite, StoredDevice, TokenStore
from functions.core.tokens import TokenRecord
from tests.contracts.conftest import MEMORY
from tests.fakes.memory import MemoryStore

NOW = 1_800_000_000_123
# A hash no token has (not through tokens.hash_token: the secret watch would take its input for a secret).
UNKNOWN_HASH = hashlib.sha256(b"no token hashes to this").hexdigest()
LAMP: dict[str, Any] = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Lamp", "nicknames": ["reading light"]},
    "willReportState": True,
    "attributes": {"commandOnlyOnOff": False},
    "state": {"on": False, "brightness": 10},
    "online": True,
}


@dataclass
class Harness:
    """The store under test, plus what a test needs around it that the ports do not offer."""

    store: FulfillmentStore
    tokens: TokenStore
    put_device: Callable[[str, str, DeviceDocument], None]
    delete_device: Callable[[str, str], None]
    user_fields: Callable[[str], dict[str, Any] | None]  # users/{u}: linked, linkedAt and unlinkedAt (ms)


def memory_harness() -> Harness:
    fake = MemoryStore()

    def delete_device(agent_user_id: str, device_id: str) -> None:
        del fake.devices[agent_user_id][device_id]  # as a unit test would

    def user_fields(agent_user_id: str) -> dict[str, Any] | None:
        found = fake.users.get(agent_user_id)
        return dict(found) if found is not None else None

    return Harness(fake, fake, fake.put_device, delete_device, user_fields)


def firestore_harness(db: Any) -> Harness:
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.platform.firestore import FirestoreTokenStore, to_ms

    def device_ref(agent_user_id: str, device_id: str) -> Any:
        return db.collection("users").document(agent_user_id).collection("devices").document(device_id)

    def put_device(agent_user_id: str, device_id: str, document: DeviceDocument) -> None:
        device_ref(agent_user_id, device_id).set(dict(document))

    def delete_device(agent_user_id: str, device_id: str) -> None:
        device_ref(agent_user_id, device_id).delete()

    def user_fields(agent_user_id: str) -> dict[str, Any] | None:
        snap = db.collection("users").document(agent_user_id).get()
        if not snap.exists:
            return None
        data = snap.to_dict() or {}
        return {key: to_ms(value) if key.endswith("At") else value for key, value in data.items()}

    return Harness(FirestoreFulfillmentStore(db), FirestoreTokenStore(db), put_device, delete_device, user_fields)


@pytest.fixture
def harness(backend: str, db: Any) -> Harness:
    return memory_harness() if backend == MEMORY else firestore_harness(db)


def token(kind: str, agent_user_id: str, client_id: str | None = "google", revoked: bool = False) -> TokenRecord:
    return TokenRecord(
        tokens.hash_token(tokens.mint(kind, agent_user_id)), kind, agent_user_id, NOW + 3_600_000, revoked, client_id
    )


def lamp(**state: Any) -> dict[str, Any]:
    document = copy.deepcopy(LAMP)
    document["state"].update(state)
    return document


def stored(harness: Harness, agent_user_id: str, device_id: str) -> StoredDevice:
    found = harness.store.load(None, agent_user_id, [device_id]).devices[device_id]
    assert found is not None
    return found


# TokenStore


@pytest.mark.parametrize(
    "record",
    [
        token(tokens.ACCESS, "alice"),
        token(tokens.REFRESH, "alice", client_id=None),
        token(tokens.CODE, "alice", revoked=True),
    ],
    ids=["access", "refresh-without-client", "revoked-code"],
)
def test_a_saved_token_reads_back_equal(harness: Harness, record: TokenRecord) -> None:
    harness.tokens.save(record)
    assert harness.tokens.get(record.token_hash) == record


def test_an_unknown_token_hash_reads_as_none(harness: Harness) -> None:
    assert harness.tokens.get(UNKNOWN_HASH) is None


def test_saving_a_token_again_replaces_it(harness: Harness) -> None:
    record = token(tokens.ACCESS, "alice")
    harness.tokens.save(record)
    revoked = TokenRecord(record.token_hash, record.kind, "alice", NOW + 1, revoked=True, client_id="other")
    harness.tokens.save(revoked)
    assert harness.tokens.get(record.token_hash) == revoked


# load


def test_load_reads_the_token_and_the_named_devices_with_none_where_absent(harness: Harness) -> None:
    record = token(tokens.ACCESS, "alice")
    harness.tokens.save(record)
    harness.put_device("alice", "lamp", LAMP)
    harness.put_device("bob", "bobs-lamp", LAMP)

    snapshot = harness.store.load(record.token_hash, "alice", ["lamp", "missing", "bobs-lamp"])

    assert snapshot.token == record
    assert list(snapshot.devices) == ["lamp", "missing", "bobs-lamp"]
    found = snapshot.devices["lamp"]
    assert found is not None
    assert found.document == LAMP
    assert found.version is not None
    assert snapshot.devices["missing"] is None
    assert snapshot.devices["bobs-lamp"] is None, "another user's device is not the caller's"


def test_load_without_a_token_hash_or_with_an_unknown_one_has_no_token(harness: Harness) -> None:
    harness.tokens.save(token(tokens.ACCESS, "alice"))
    harness.put_device("alice", "lamp", LAMP)
    assert harness.store.load(None, "alice", ["lamp"]).token is None
    assert harness.store.load(UNKNOWN_HASH, "alice", ["lamp"]).token is None
    assert harness.store.load(None, "alice", []).devices == {}


def test_a_loaded_document_is_a_copy(harness: Harness) -> None:
    harness.put_device("alice", "lamp", LAMP)
    first = stored(harness, "alice", "lamp")
    first.document["state"]["on"] = True
    assert stored(harness, "alice", "lamp").document == LAMP


# list_devices


def test_list_devices_gives_all_of_the_users_devices_in_id_order(harness: Harness) -> None:
    for device_id in ["lamp-b", "lamp-a", "Lamp-c", "lamp-10", "lamp-9"]:
        harness.put_device("alice", device_id, lamp(brightness=len(device_id)))
    harness.put_device("bob", "bobs-lamp", LAMP)

    listed = harness.store.list_devices("alice")

    assert [device_id for device_id, _ in listed] == ["Lamp-c", "lamp-10", "lamp-9", "lamp-a", "lamp-b"]
    assert dict(listed)["lamp-10"] == lamp(brightness=7)
    assert harness.store.list_devices("carol") == []


# commit_states


def test_a_commit_replaces_the_whole_state_and_nothing_else(harness: Harness) -> None:
    harness.put_device("alice", "lamp", LAMP)
    before = stored(harness, "alice", "lamp")

    assert harness.store.commit_states("alice", [StateWrite("lamp", {"on": True}, before.version)])

    after = stored(harness, "alice", "lamp")
    assert after.document == {**LAMP, "state": {"on": True}}, "old state keys go, other fields stay"
    assert after.version != before.version


def test_a_commit_on_a_version_read_before_a_change_writes_nothing(harness: Harness) -> None:
    harness.put_device("alice", "lamp", LAMP)
    harness.put_device("alice", "other", LAMP)
    lamp_read, other_read = stored(harness, "alice", "lamp"), stored(harness, "alice", "other")
    assert harness.store.commit_states("alice", [StateWrite("lamp", {"on": True}, lamp_read.version)])

    stale = [
        StateWrite("other", {"on": True}, other_read.version),
        StateWrite("lamp", {"on": False}, lamp_read.version),
    ]
    assert not harness.store.commit_states("alice", stale)

    assert stored(harness, "alice", "other").document == LAMP, "all or nothing: the fresh device is not written"
    assert stored(harness, "alice", "lamp").document["state"] == {"on": True}


def test_a_commit_moves_only_the_written_devices_versions(harness: Harness) -> None:
    harness.put_device("alice", "lamp", LAMP)
    harness.put_device("alice", "other", LAMP)
    lamp_read, other_read = stored(harness, "alice", "lamp"), stored(harness, "alice", "other")
    assert harness.store.commit_states("alice", [StateWrite("lamp", {"on": True}, lamp_read.version)])
    assert harness.store.commit_states("alice", [StateWrite("other", {"on": True}, other_read.version)])
    fresh = stored(harness, "alice", "lamp")
    assert harness.store.commit_states("alice", [StateWrite("lamp", {"on": False}, fresh.version)])


def test_a_commit_that_changes_nothing_keeps_the_version(harness: Harness) -> None:
    """Firestore keeps a document's update time when a write leaves it as it was."""
    harness.put_device("alice", "lamp", LAMP)
    before = stored(harness, "alice", "lamp")
    assert harness.store.commit_states("alice", [StateWrite("lamp", dict(LAMP["state"]), before.version)])
    assert stored(harness, "alice", "lamp").version == before.version
    assert harness.store.commit_states("alice", [StateWrite("lamp", {"on": True}, before.version)])


def test_a_commit_to_a_device_deleted_since_its_read_fails(harness: Harness) -> None:
    harness.put_device("alice", "lamp", LAMP)
    harness.put_device("alice", "other", LAMP)
    lamp_read, other_read = stored(harness, "alice", "lamp"), stored(harness, "alice", "other")
    harness.delete_device("alice", "lamp")

    writes = [
        StateWrite("other", {"on": True}, other_read.version),
        StateWrite("lamp", {"on": True}, lamp_read.version),
    ]
    assert not harness.store.commit_states("alice", writes)

    assert harness.store.load(None, "alice", ["lamp"]).devices["lamp"] is None, "the deleted device stays deleted"
    assert stored(harness, "alice", "other").document == LAMP


def test_a_commit_without_a_version_is_refused_and_creates_nothing(harness: Harness) -> None:
    """No version means the device was not read as stored: on Firestore an empty precondition is none at all."""
    harness.put_device("alice", "other", LAMP)
    writes = [
        StateWrite("other", {"on": True}, stored(harness, "alice", "other").version),
        StateWrite("lamp", {}, None),
    ]
    assert not harness.store.commit_states("alice", writes)
    assert harness.store.load(None, "alice", ["lamp"]).devices["lamp"] is None
    assert stored(harness, "alice", "other").document == LAMP, "all or nothing"


def test_an_empty_commit_succeeds(harness: Harness) -> None:
    assert harness.store.commit_states("alice", [])


def test_of_concurrent_commits_on_one_version_exactly_one_wins(harness: Harness) -> None:
    harness.put_device("alice", "lamp", LAMP)
    read = stored(harness, "alice", "lamp")
    results: list[bool] = []
    start = threading.Barrier(4)

    def commit(brightness: int) -> None:
        start.wait()
        results.append(
            harness.store.commit_states("alice", [StateWrite("lamp", {"brightness": brightness}, read.version)])
        )

    threads = [threading.Thread(target=commit, args=(value,)) for value in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False, False, False, True]


# link state


def test_mark_linked_records_the_link_and_keeps_what_was_there(harness: Harness) -> None:
    assert harness.store.disconnect("alice", NOW) == 0
    harness.store.mark_linked("alice", NOW + 5)
    assert harness.user_fields("alice") == {"linked": True, "linkedAt": NOW + 5, "unlinkedAt": NOW}


def test_disconnect_revokes_every_token_of_the_user_and_only_theirs(harness: Harness) -> None:
    mine = [token(tokens.ACCESS, "alice"), token(tokens.REFRESH, "alice"), token(tokens.CODE, "alice", None)]
    theirs = token(tokens.ACCESS, "bob")
    for record in [*mine, theirs]:
        harness.tokens.save(record)
    harness.store.mark_linked("alice", NOW)
    harness.put_device("alice", "lamp", LAMP)

    assert harness.store.disconnect("alice", NOW + 7) == 3

    assert [harness.tokens.get(record.token_hash) for record in mine] == [None, None, None]
    assert harness.store.load(mine[0].token_hash, "alice", []).token is None
    assert harness.tokens.get(theirs.token_hash) == theirs
    assert harness.user_fields("alice") == {"linked": False, "linkedAt": NOW, "unlinkedAt": NOW + 7}
    assert harness.store.list_devices("alice") == [("lamp", LAMP)], "devices stay"
    assert harness.user_fields("bob") is None


def test_disconnect_of_a_user_without_tokens_still_marks_them_unlinked(harness: Harness) -> None:
    assert harness.store.disconnect("carol", NOW) == 0
    assert harness.user_fields("carol") == {"linked": False, "unlinkedAt": NOW}


# DISCONNECT of one grant: account linking's grants (tokens with a grantId, and a record per grant; the linking's
# own contract, tests/contracts/test_linking_stores.py, covers them as the grant store writes them)


@dataclass
class Grants:
    save: Callable[[TokenRecord, str], None]  # a token of a grant
    record: Callable[[str, str, int], None]  # a grant's record: (grant id, user, expiry ms)


@pytest.fixture
def grants(backend: str, db: Any, harness: Harness) -> Grants:
    if backend == MEMORY:
        fake = harness.store
        assert isinstance(fake, MemoryStore)

        def record_in_memory(grant_id: str, agent_user_id: str, expires_at_ms: int) -> None:
            fake.grant_records[grant_id] = (agent_user_id, expires_at_ms)

        return Grants(fake.save_in_grant, record_in_memory)
    from functions.linking import model as linking
    from functions.platform.firestore import to_datetime

    def save(token_record: TokenRecord, grant_id: str) -> None:
        harness.tokens.save(token_record)
        db.collection("tokens").document(token_record.token_hash).update({"grantId": grant_id})

    def record(grant_id: str, agent_user_id: str, expires_at_ms: int) -> None:
        document = {"kind": linking.GRANT_RECORD, "grantId": grant_id, "agentUserId": agent_user_id}
        db.collection("tokens").document(linking.grant_record_id(grant_id)).set(
            {**document, "expiresAt": to_datetime(expires_at_ms)}
        )

    return Grants(save, record)


def linked_twice(harness: Harness, grants: Grants) -> tuple[list[TokenRecord], list[TokenRecord]]:
    """Alice's account linked from two Google accounts: two grants, each with its tokens and record."""
    harness.store.mark_linked("alice", NOW)
    first, second = [token(tokens.ACCESS, "alice"), token(tokens.REFRESH, "alice")], [token(tokens.ACCESS, "alice")]
    for grant_id, records in (("grant-1", first), ("grant-2", second)):
        for record in records:
            grants.save(record, grant_id)
        grants.record(grant_id, "alice", NOW + 3_600_000)
    return first, second


def test_disconnect_revokes_only_the_grant_of_its_token_while_another_lives(harness: Harness, grants: Grants) -> None:
    first, second = linked_twice(harness, grants)
    bob = token(tokens.ACCESS, "bob")
    grants.save(bob, "grant-3")

    assert harness.store.disconnect("alice", NOW + 7, first[0].token_hash) == 3  # two tokens and the record

    assert [harness.tokens.get(record.token_hash) for record in first] == [None, None]
    assert harness.tokens.get(second[0].token_hash) == second[0]
    assert harness.store.load(second[0].token_hash, "alice", []).token == second[0], "QUERY and EXECUTE go on"
    assert harness.user_fields("alice") == {"linked": True, "linkedAt": NOW}, "Report State goes on"
    assert harness.tokens.get(bob.token_hash) == bob

    assert harness.store.disconnect("alice", NOW + 9, second[0].token_hash) == 2
    assert harness.user_fields("alice") == {"linked": False, "linkedAt": NOW, "unlinkedAt": NOW + 9}


def test_disconnect_with_a_token_outside_any_grant_revokes_those_and_keeps_the_grants(
    harness: Harness, grants: Grants
) -> None:
    first, second = linked_twice(harness, grants)
    legacy = [token(tokens.ACCESS, "alice"), token(tokens.REFRESH, "alice")]
    for record in legacy:
        harness.tokens.save(record)  # before grants: no grantId
    assert harness.store.disconnect("alice", NOW + 7, legacy[0].token_hash) == 2
    assert [harness.tokens.get(record.token_hash) for record in legacy] == [None, None]
    assert [harness.tokens.get(record.token_hash) for record in first + second] == first + second
    assert harness.user_fields("alice") == {"linked": True, "linkedAt": NOW}


def test_tokens_outside_any_grant_keep_the_user_linked_until_they_go(harness: Harness, grants: Grants) -> None:
    first, second = linked_twice(harness, grants)
    legacy = token(tokens.REFRESH, "alice")
    harness.tokens.save(legacy)
    harness.store.disconnect("alice", NOW + 7, first[0].token_hash)
    harness.store.disconnect("alice", NOW + 8, second[0].token_hash)
    assert harness.user_fields("alice") == {"linked": True, "linkedAt": NOW}
    assert harness.tokens.get(legacy.token_hash) == legacy
    assert harness.store.disconnect("alice", NOW + 9, legacy.token_hash) == 1
    assert harness.user_fields("alice") == {"linked": False, "linkedAt": NOW, "unlinkedAt": NOW + 9}


def test_an_expired_grant_keeps_no_one_linked(harness: Harness, grants: Grants) -> None:
    harness.store.mark_linked("alice", NOW)
    access = token(tokens.ACCESS, "alice")
    grants.save(access, "grant-1")
    grants.record("grant-old", "alice", NOW - 1)  # its refresh token's year is over
    assert harness.store.disconnect("alice", NOW + 7, access.token_hash) == 1
    assert harness.user_fields("alice") == {"linked": False, "linkedAt": NOW, "unlinkedAt": NOW + 7}


def test_disconnect_with_an_unknown_or_another_users_token_revokes_nothing(harness: Harness, grants: Grants) -> None:
    first, second = linked_twice(harness, grants)
    bob = token(tokens.ACCESS, "bob")
    grants.save(bob, "grant-3")
    assert harness.store.disconnect("alice", NOW + 7, UNKNOWN_HASH) == 0
    assert harness.store.disconnect("alice", NOW + 7, bob.token_hash) == 0
    assert [harness.tokens.get(record.token_hash) for record in [*first, *second, bob]] == [*first, *second, bob]
    assert harness.user_fields("alice") == {"linked": True, "linkedAt": NOW}
