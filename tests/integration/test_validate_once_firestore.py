"""Read less, validate once, never wait on Pub/Sub — on the Firestore emulator.

The adapter's sparing reads (functions/fulfillment/store.py: load_known, list_known, commit_known), the guarantee
through the HTTP function (a device written straight to Firestore with an invalid value after a valid read is not
served: the next QUERY says deviceNotFound and the next SYNC leaves it out, with their log lines), and SYNC with a
Pub/Sub that hangs, on the real Firestore store and wiring.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.core.ports import NOT_READ, StateWrite
from tests.fakes.publishers import HangingPublisher, RecordingPublisher, returns_while
from tests.integration.conftest import Google
from tests.schema_oracle import oracle
from tools.google import execute_request, execution, query_request, sync_request

pytestmark = pytest.mark.emulator

LAMP: dict[str, Any] = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Lamp"},
    "willReportState": True,
    "state": {"on": False, "brightness": 40},
}


def lamps(count: int) -> list[dict[str, Any]]:
    return [{**copy.deepcopy(LAMP), "id": f"lamp-{index}"} for index in range(count)]


@pytest.fixture
def store(firestore_db: Any) -> Any:
    from functions.fulfillment.store import FirestoreFulfillmentStore

    return FirestoreFulfillmentStore(firestore_db)


def devices_of(db: Any, user: str) -> Any:
    return db.collection("users").document(user).collection("devices")


# The adapter


def test_load_known_spares_the_devices_at_their_known_versions(
    store: Any, firestore_db: Any, add_devices: Callable[..., None], issue_token: Callable[..., str]
) -> None:
    from functions.core import tokens

    add_devices("alice", lamps(3))
    token_hash = tokens.hash_token(issue_token("alice"))
    whole = store.load_known(token_hash, "alice", ["lamp-0", "lamp-1", "lamp-2", "nope"], {})
    versions = {i: s.version for i, s in whole.devices.items() if s is not None}
    assert whole.devices["lamp-0"].document["state"] == LAMP["state"]
    assert whole.devices["nope"] is None

    spared = store.load_known(token_hash, "alice", ["lamp-0", "lamp-1"], versions)
    assert spared.token == whole.token, "the token is read with its fields, the devices without theirs"
    assert {i: (s.document is NOT_READ, s.version) for i, s in spared.devices.items()} == {
        "lamp-0": (True, versions["lamp-0"]),
        "lamp-1": (True, versions["lamp-1"]),
    }

    devices_of(firestore_db, "alice").document("lamp-1").update({"state.on": True})
    changed = store.load_known(None, "alice", ["lamp-0", "lamp-1", "lamp-2"], versions)
    assert changed.devices["lamp-0"].document is NOT_READ
    assert changed.devices["lamp-1"].document["state"] == {"on": True, "brightness": 40}, "changed: read whole"
    assert changed.devices["lamp-1"].version != versions["lamp-1"]
    assert list(changed.devices) == ["lamp-0", "lamp-1", "lamp-2"]

    devices_of(firestore_db, "alice").document("lamp-2").delete()
    assert store.load_known(None, "alice", ["lamp-2"], versions).devices["lamp-2"] is None


def test_list_known_lists_versions_and_reads_only_the_changed_devices(
    store: Any, firestore_db: Any, add_devices: Callable[..., None]
) -> None:
    add_devices("alice", lamps(4))
    listed = store.list_known("alice", {})
    assert [i for i, _ in listed] == ["lamp-0", "lamp-1", "lamp-2", "lamp-3"]
    versions = {i: s.version for i, s in listed}
    devices_of(firestore_db, "alice").document("lamp-2").update({"state.brightness": 9})
    devices_of(firestore_db, "alice").document("lamp-3").delete()
    devices_of(firestore_db, "alice").document("lamp-4").set({**LAMP, "name": {"name": "New"}})
    again = dict(store.list_known("alice", versions))
    assert sorted(again) == ["lamp-0", "lamp-1", "lamp-2", "lamp-4"]
    assert again["lamp-0"].document is NOT_READ
    assert again["lamp-2"].document["state"]["brightness"] == 9
    assert again["lamp-4"].document["name"] == {"name": "New"}


def test_commit_known_answers_the_versions_a_read_then_finds(store: Any, add_devices: Callable[..., None]) -> None:
    add_devices("alice", lamps(2))
    read = store.load(None, "alice", ["lamp-0", "lamp-1"]).devices
    writes = [StateWrite(i, {"on": True, "brightness": 1}, read[i].version) for i in ("lamp-0", "lamp-1")]
    versions = store.commit_known("alice", writes)
    assert versions is not None
    after = store.load(None, "alice", ["lamp-0", "lamp-1"]).devices
    assert versions == {i: after[i].version for i in ("lamp-0", "lamp-1")}
    assert store.commit_known("alice", writes) is None, "the old versions no longer hold"
    assert store.commit_known("alice", []) == {}


# The guarantee, through the HTTP function


def test_a_device_written_invalid_straight_to_firestore_after_a_valid_read_is_not_served(
    google: Callable[[str], Google],
    add_devices: Callable[..., None],
    firestore_db: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_devices("alice", lamps(3))
    alice = google("alice")
    status, synced = alice.post(sync_request())
    assert status == 200
    assert len(synced["payload"]["devices"]) == 3
    status, queried = alice.post(query_request(["lamp-1"]))
    assert queried["payload"]["devices"]["lamp-1"]["status"] == "SUCCESS"
    alice.post(sync_request())  # the second SYNC reads the versions only: lamp-1 is remembered as valid

    devices_of(firestore_db, "alice").document("lamp-1").update({"state.brightness": "very bright"})
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        _, queried = alice.post(query_request(["lamp-0", "lamp-1"]))
        _, synced = alice.post(sync_request())
        _, executed = alice.post(execute_request([(["lamp-1"], [execution("OnOff", {"on": True})])]))

    oracle().assert_response("query", queried)
    oracle().assert_response("sync", synced)
    assert queried["payload"]["devices"]["lamp-1"] == {
        "online": False,
        "status": "ERROR",
        "errorCode": "deviceNotFound",
    }
    assert queried["payload"]["devices"]["lamp-0"]["status"] == "SUCCESS"
    assert [d["id"] for d in synced["payload"]["devices"]] == ["lamp-0", "lamp-2"]
    assert executed["payload"]["commands"] == [{"ids": ["lamp-1"], "status": "ERROR", "errorCode": "deviceNotFound"}]
    [left_out] = [r for r in caplog.records if r.getMessage() == "device left out of SYNC"]
    assert "state (Brightness).brightness" in getattr(left_out, "reason", "")
    assert len([r for r in caplog.records if r.getMessage() == "invalid device document"]) == 2

    devices_of(firestore_db, "alice").document("lamp-1").update({"state.brightness": 55})
    _, synced = alice.post(sync_request())
    _, queried = alice.post(query_request(["lamp-1"]))
    assert len(synced["payload"]["devices"]) == 3
    assert queried["payload"]["devices"]["lamp-1"]["brightness"] == 55


def test_what_execute_writes_is_what_the_next_query_answers(
    google: Callable[[str], Google], add_devices: Callable[..., None], firestore_db: Any
) -> None:
    add_devices("alice", lamps(2))
    alice = google("alice")
    for level in (10, 20, 30):
        _, executed = alice.post(
            execute_request([(["lamp-0", "lamp-1"], [execution("BrightnessAbsolute", {"brightness": level})])])
        )
        assert executed["payload"]["commands"][0]["status"] == "SUCCESS"
        _, queried = alice.post(query_request(["lamp-0", "lamp-1"]))
        assert {d["brightness"] for d in queried["payload"]["devices"].values()} == {level}
    stored = devices_of(firestore_db, "alice").document("lamp-1").get().to_dict()
    assert stored["state"]["brightness"] == 30


# SYNC with a Pub/Sub that hangs, on the real store and wiring


@pytest.fixture
def hanging() -> Iterator[HangingPublisher]:
    publisher = HangingPublisher()
    yield publisher
    publisher.release.set()


def test_sync_answers_alike_with_a_pubsub_that_hangs_and_none_waits_for_it(
    hanging: HangingPublisher, add_devices: Callable[..., None], issue_token: Callable[..., str]
) -> None:
    """The hanging publishes never return while the test runs, so a SYNC that waited on one would never answer."""
    from functions.fulfillment import wiring
    from functions.fulfillment.initial_report import BACKGROUND_WORKERS

    add_devices("alice", lamps(100))
    token = issue_token("alice")
    healthy = RecordingPublisher()
    normal, stuck = wiring.build(lambda: healthy), wiring.build(lambda: hanging)

    def syncs(service: Any, rounds: int) -> list[Any]:
        return [service.handle(token, sync_request("sync-1")).body for _ in range(rounds)]

    normal_bodies = syncs(normal, 8)
    stuck_bodies = returns_while(hanging, lambda: syncs(stuck, 8))

    assert stuck_bodies == normal_bodies
    assert len(stuck_bodies[0]["payload"]["devices"]) == 100
    deadline = time.monotonic() + 10
    while len(hanging.messages) < BACKGROUND_WORKERS and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # one more publish starting now would be a worker the pool does not have
    assert len(hanging.messages) == BACKGROUND_WORKERS, "each hanging publish holds a worker; the rest wait, bounded"
