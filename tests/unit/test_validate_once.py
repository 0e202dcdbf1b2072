"""Validate once (functions.core.ports ValidatedDevices / ValidatedReads): a stored device is validated once per
version, and both halves of the guarantee hold — an unchanged device is not validated again, and one never
validated or changed behind the instance's back is validated before it is served (no emulator)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from functions.core import ports, tokens
from functions.core.device import Device, parse_device
from functions.core.ports import NOT_READ, KnownVersionStore, Snapshot, StateWrite, StoredDevice, ValidatedDevices
from functions.fulfillment.service import Fulfillment
from tests.fakes.memory import MemoryStore
from tests.schema_oracle import oracle
from tools.google import execute_request, execution, query_request, sync_request

NOW = 1_800_000_000_000
LAMP: dict[str, Any] = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Lamp"},
    "willReportState": True,
    "state": {"on": False, "brightness": 10},
}


class SparingStore(MemoryStore):
    """The in-memory fake with the KnownVersionStore reads, sparing the devices at the versions the caller knows,
    as the Firestore adapter does; counts the documents it hands over whole."""

    def __init__(self) -> None:
        super().__init__()
        self.read_whole = 0
        self.sparing: list[bool] = []  # per read: whether it named known versions

    def load_known(
        self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str], known: Mapping[str, Any]
    ) -> Snapshot:
        self.sparing.append(bool(known))
        snapshot = self.load(token_hash, agent_user_id, device_ids)
        return Snapshot(snapshot.token, {i: self._spare(s, known.get(i)) for i, s in snapshot.devices.items()})

    def list_known(self, agent_user_id: str, known: Mapping[str, Any]) -> list[tuple[str, StoredDevice]]:
        ids = sorted(self.devices.get(agent_user_id, {}))
        stored = self.load(None, agent_user_id, ids).devices
        return [(i, spared) for i in ids if (spared := self._spare(stored[i], known.get(i))) is not None]

    def commit_known(self, agent_user_id: str, writes: Sequence[StateWrite]) -> Mapping[str, Any] | None:
        if not self.commit_states(agent_user_id, writes):
            return None
        return {write.device_id: self.versions[(agent_user_id, write.device_id)] for write in writes}

    def _spare(self, stored: StoredDevice | None, known: Any) -> StoredDevice | None:
        if stored is None or stored.version == known:
            return StoredDevice(NOT_READ, stored.version) if stored is not None else None
        self.read_whole += 1
        return stored

    def write_behind_the_back(self, agent_user_id: str, device_id: str, **fields: Any) -> None:
        """A write that bypasses the fulfillment (a device cloud, a console edit): a new version."""
        self.put_device(agent_user_id, device_id, {**self.devices[agent_user_id][device_id], **fields})


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the devices validated from their documents, in order."""
    seen: list[str] = []

    def counting(device_id: str, document: Mapping[str, Any]) -> Device:
        seen.append(device_id)
        return parse_device(device_id, document)

    monkeypatch.setattr(ports, "parse_device", counting)
    return seen


@pytest.fixture
def store() -> SparingStore:
    store = SparingStore()
    for index in range(3):
        store.put_device("alice", f"lamp-{index}", LAMP)
    return store


def service(store: MemoryStore) -> Fulfillment:
    # No token cache: every request reads the token with the devices, as in the benchmarks' ratio runs.
    return Fulfillment(store, clock_ms=lambda: NOW, sleep=lambda _: None, token_cache_ms=0)


def token_for(store: MemoryStore, user: str = "alice") -> str:
    return tokens.issue(store, tokens.ACCESS, user, 3600, NOW)


def states(reply_body: dict[str, Any]) -> dict[str, Any]:
    return dict(reply_body["payload"]["devices"])


def test_the_firestore_adapter_and_the_fake_offer_the_sparing_reads() -> None:
    from functions.fulfillment.initial_report import InitialReportAfterSync
    from functions.fulfillment.store import FirestoreFulfillmentStore

    assert issubclass(FirestoreFulfillmentStore, KnownVersionStore)
    assert isinstance(SparingStore(), KnownVersionStore)
    assert not isinstance(MemoryStore(), KnownVersionStore)
    assert isinstance(InitialReportAfterSync(MemoryStore(), lambda: None, lambda: "t"), KnownVersionStore)


# The first half: an unchanged device is not validated again


def test_an_unchanged_device_is_validated_once_and_then_not_read_whole(
    store: SparingStore, validations: list[str]
) -> None:
    fulfillment, token = service(store), token_for(store)
    first = fulfillment.handle(token, query_request(["lamp-0", "lamp-1"], "q"))
    assert (validations, store.read_whole) == (["lamp-0", "lamp-1"], 2)
    for _ in range(3):
        again = fulfillment.handle(token, query_request(["lamp-0", "lamp-1"], "q"))
        assert again.body == first.body
    oracle().assert_response("query", again.body)
    assert (validations, store.read_whole) == (["lamp-0", "lamp-1"], 2), "served from the validated devices"


def test_sync_validates_each_device_once_across_syncs_and_queries(store: SparingStore, validations: list[str]) -> None:
    fulfillment, token = service(store), token_for(store)
    first = fulfillment.handle(token, sync_request("s"))
    oracle().assert_response("sync", first.body)
    fulfillment.handle(token, query_request(["lamp-0", "lamp-1", "lamp-2"]))
    assert fulfillment.handle(token, sync_request("s")).body == first.body
    assert sorted(validations) == ["lamp-0", "lamp-1", "lamp-2"]


def test_a_state_the_instance_writes_is_validated_there_and_not_again_on_reading(
    store: SparingStore, validations: list[str]
) -> None:
    fulfillment, token = service(store), token_for(store)
    request = execute_request([(["lamp-0"], [execution("BrightnessAbsolute", {"brightness": 70})])])
    assert fulfillment.handle(token, request).body["payload"]["commands"][0]["status"] == "SUCCESS"
    assert validations == ["lamp-0"]
    assert states(fulfillment.handle(token, query_request(["lamp-0"])).body)["lamp-0"]["brightness"] == 70
    assert store.devices["alice"]["lamp-0"]["state"]["brightness"] == 70
    assert validations == ["lamp-0"], "the written version was remembered with its (valid) new state"


def test_a_store_without_sparing_reads_still_validates_once_per_version(validations: list[str]) -> None:
    plain = MemoryStore()
    plain.put_device("alice", "lamp-0", LAMP)
    fulfillment, token = service(plain), token_for(plain)
    for _ in range(3):
        fulfillment.handle(token, query_request(["lamp-0"]))
    assert validations == ["lamp-0"]
    for _ in range(2):  # its listing has no versions: each SYNC validates what it serves
        fulfillment.handle(token, sync_request())
    assert validations == ["lamp-0", "lamp-0", "lamp-0"]


# The second half: a device never validated, or changed behind the instance's back, is validated before it is served


def test_a_device_changed_behind_the_back_is_validated_again_and_left_out_when_invalid(
    store: SparingStore, validations: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    fulfillment, token = service(store), token_for(store)
    assert len(fulfillment.handle(token, sync_request()).body["payload"]["devices"]) == 3
    assert states(fulfillment.handle(token, query_request(["lamp-1"])).body)["lamp-1"]["status"] == "SUCCESS"

    store.write_behind_the_back("alice", "lamp-1", state={"on": "banana", "brightness": 10})
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        synced = fulfillment.handle(token, sync_request())
        queried = fulfillment.handle(token, query_request(["lamp-1", "lamp-0"]))
        executed = fulfillment.handle(token, execute_request([(["lamp-1"], [execution("OnOff", {"on": True})])]))

    assert [d["id"] for d in synced.body["payload"]["devices"]] == ["lamp-0", "lamp-2"]
    assert states(queried.body)["lamp-1"] == {"online": False, "status": "ERROR", "errorCode": "deviceNotFound"}
    assert states(queried.body)["lamp-0"]["status"] == "SUCCESS"
    assert executed.body["payload"]["commands"] == [
        {"ids": ["lamp-1"], "status": "ERROR", "errorCode": "deviceNotFound"}
    ]
    left_out = [r for r in caplog.records if r.getMessage() == "device left out of SYNC"]
    assert len(left_out) == 1
    assert "state" in getattr(left_out[0], "reason", "")
    assert len([r for r in caplog.records if r.getMessage() == "invalid device document"]) == 2
    assert validations.count("lamp-1") == 2, "validated at its first version, and at the new one (once)"

    with caplog.at_level(logging.ERROR):
        caplog.clear()
        again = fulfillment.handle(token, sync_request())
    assert [d["id"] for d in again.body["payload"]["devices"]] == ["lamp-0", "lamp-2"]
    assert [r.getMessage() for r in caplog.records] == ["device left out of SYNC"], "still reported at every SYNC"
    assert validations.count("lamp-1") == 2, "its problem is remembered for that version"

    store.write_behind_the_back("alice", "lamp-1", state={"on": True, "brightness": 10})  # repaired
    assert len(fulfillment.handle(token, sync_request()).body["payload"]["devices"]) == 3
    assert states(fulfillment.handle(token, query_request(["lamp-1"])).body)["lamp-1"]["on"] is True


def test_devices_that_keep_changing_elsewhere_are_read_whole_in_one_go_until_they_settle(
    store: SparingStore, validations: list[str]
) -> None:
    fulfillment, token = service(store), token_for(store)
    query = query_request(["lamp-0", "lamp-1"])

    def read(change: bool = False) -> None:
        if change:
            store.write_behind_the_back("alice", "lamp-1", state={"on": True, "brightness": len(store.sparing)})
        assert states(fulfillment.handle(token, query).body)["lamp-1"]["status"] == "SUCCESS"

    read()  # never seen: whole
    read()  # unchanged: versions only
    read(change=True)  # versions only, finds lamp-1 changed (and reads it again)
    read(change=True)  # still changing: whole at once
    read()  # whole, finds nothing changed
    read()  # versions only again
    assert store.sparing == [False, True, True, False, False, True]
    assert validations == ["lamp-0", "lamp-1", "lamp-1", "lamp-1"], "only the changed versions are validated"


def test_a_device_added_or_removed_behind_the_back_is_seen_by_the_next_read(store: SparingStore) -> None:
    fulfillment, token = service(store), token_for(store)
    fulfillment.handle(token, sync_request())
    store.put_device("alice", "lamp-9", {**LAMP, "type": "action.devices.types.NOPE"})
    del store.devices["alice"]["lamp-0"]
    synced = fulfillment.handle(token, sync_request())
    assert [d["id"] for d in synced.body["payload"]["devices"]] == ["lamp-1", "lamp-2"]
    assert states(fulfillment.handle(token, query_request(["lamp-0"])).body)["lamp-0"]["status"] == "ERROR"


def test_an_executed_state_that_would_be_invalid_is_not_remembered(validations: list[str]) -> None:
    device = parse_device("lamp", LAMP)
    remembered = ValidatedDevices()
    assert not remembered.remember_state("alice", device, {"on": "banana"}, 7)
    assert not remembered.remember_state("alice", device, {"color": {"spectrumRgb": 1}}, 7)
    assert not remembered.remember_state("alice", device, {"on": True}, None)
    assert remembered.held("alice") == {}
    assert remembered.remember_state("alice", device, {"on": True, "brightness": 3}, 7)
    [(version, found)] = remembered.held("alice").values()
    assert version == 7
    assert isinstance(found, Device)
    assert dict(found.state) == {"on": True, "brightness": 3}


# The memory stays bounded


def test_the_remembered_devices_are_bounded_least_recently_read_user_first() -> None:
    remembered = ValidatedDevices(limit=3)
    for user in ("u1", "u2"):
        remembered.resolve(user, "a", 1, LAMP, {})
    remembered.held("u1")  # u1 read again: u2 is now the least recent
    remembered.resolve("u3", "a", 1, LAMP, {})
    remembered.resolve("u3", "b", 1, LAMP, {})
    assert (remembered.held("u1") != {}, remembered.held("u2"), len(remembered.held("u3"))) == (True, {}, 2)
    for device_id in ("c", "d", "e"):  # one user alone over the limit: validated at every read, not remembered
        assert isinstance(remembered.resolve("u4", device_id, 1, LAMP, {}), Device)
    assert sum(len(remembered.held(user)) for user in ("u1", "u2", "u3", "u4")) <= 3


def test_an_invalid_document_is_remembered_with_its_problem(validations: list[str]) -> None:
    remembered = ValidatedDevices()
    broken = {**LAMP, "traits": []}
    problem = remembered.resolve("alice", "lamp", 1, broken, {})
    assert isinstance(problem, str)
    assert "traits" in problem
    assert remembered.resolve("alice", "lamp", 1, NOT_READ, remembered.held("alice")) == problem
    assert validations == ["lamp"]
    assert isinstance(remembered.resolve("alice", "lamp", 2, LAMP, remembered.held("alice")), Device)
