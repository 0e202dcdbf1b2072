"""The fulfillment service on in-memory storage: I/O counts, token caching, write conflicts (no emulator)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from functions.core import tokens
from functions.core.ports import Snapshot, StateWrite
from functions.fulfillment.service import MAX_WRITE_ATTEMPTS, Fulfillment
from tests.fakes.memory import MemoryStore
from tests.schema_oracle import oracle
from tools.google import execute_request, execution, query_request, sync_request

LAMP = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Lamp"},
    "willReportState": True,
    "attributes": {},
    "state": {"on": False, "brightness": 10},
    "online": True,
}


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str | None, list[str]]] = []
        self.commits = 0
        self.conflicts_left = 0

    def load(self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str]) -> Snapshot:
        self.loads.append((token_hash, list(device_ids)))
        return super().load(token_hash, agent_user_id, device_ids)

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        self.commits += 1
        if self.conflicts_left:
            # Someone else wrote the device between our read and our write.
            self.conflicts_left -= 1
            for write in writes:
                self.versions[(agent_user_id, write.device_id)] += 1000
        return super().commit_states(agent_user_id, writes)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def store() -> CountingStore:
    store = CountingStore()
    for index in range(5):
        store.put_device("u1", f"lamp-{index}", LAMP)
    return store


def service(store: CountingStore, clock: Clock | None = None, cache_ms: int = 10_000) -> Fulfillment:
    return Fulfillment(store, clock_ms=clock or Clock(), sleep=lambda _: None, token_cache_ms=cache_ms)


def token_for(store: CountingStore, user: str = "u1", now: int = 1_800_000_000_000) -> str:
    return tokens.issue(store, tokens.ACCESS, user, 3600, now)


def test_query_reads_token_and_devices_in_one_batched_read(store: CountingStore) -> None:
    token = token_for(store)
    reply = service(store).handle(token, query_request([f"lamp-{i}" for i in range(5)]))
    oracle().assert_response("query", reply.body)
    assert len(store.loads) == 1
    assert store.loads[0] == (tokens.hash_token(token), [f"lamp-{i}" for i in range(5)])


def test_a_cached_token_skips_the_token_read_until_the_cache_expires(store: CountingStore) -> None:
    clock = Clock()
    fulfillment = service(store, clock, cache_ms=10_000)
    token = token_for(store, now=clock.now)
    fulfillment.handle(token, query_request(["lamp-0"]))
    fulfillment.handle(token, query_request(["lamp-0"]))
    assert [hash_ is not None for hash_, _ in store.loads] == [True, False]

    store.tokens.clear()  # revoked elsewhere
    clock.now += 10_001
    assert fulfillment.handle(token, query_request(["lamp-0"])).status == 401


def test_an_expired_token_is_refused_even_when_cached(store: CountingStore) -> None:
    clock = Clock()
    fulfillment = service(store, clock, cache_ms=10**9)
    token = tokens.issue(store, tokens.ACCESS, "u1", 5, clock.now)
    assert fulfillment.handle(token, sync_request()).status == 200
    clock.now += 5_000
    assert fulfillment.handle(token, sync_request()).status == 401


def test_disconnect_evicts_the_users_cached_tokens(store: CountingStore) -> None:
    fulfillment = service(store)
    token = token_for(store)
    assert fulfillment.handle(token, sync_request()).status == 200
    assert fulfillment.handle(token, {"requestId": "r", "inputs": [{"intent": "action.devices.DISCONNECT"}]}).body == {}
    assert fulfillment.handle(token, sync_request()).status == 401


def test_execute_reads_again_and_retries_after_a_write_conflict(store: CountingStore) -> None:
    token = token_for(store)
    store.conflicts_left = 2
    request = execute_request([(["lamp-0"], [execution("BrightnessRelative", {"brightnessRelativePercent": 5})])])
    reply = service(store).handle(token, request)
    oracle().assert_response("execute", reply.body)
    assert reply.body["payload"]["commands"][0]["status"] == "SUCCESS"
    assert store.commits == 3
    assert store.devices["u1"]["lamp-0"]["state"]["brightness"] == 15


def test_execute_that_never_wins_its_write_answers_transient_error_not_5xx(store: CountingStore) -> None:
    token = token_for(store)
    store.conflicts_left = 10**6
    request = execute_request([(["lamp-0", "ghost"], [execution("OnOff", {"on": True})])])
    reply = service(store).handle(token, request)
    assert reply.status == 200
    oracle().assert_response("execute", reply.body)
    by_id = {i: r for r in reply.body["payload"]["commands"] for i in r["ids"]}
    assert by_id["lamp-0"]["errorCode"] == "transientError"
    assert by_id["ghost"]["errorCode"] == "deviceNotFound"
    assert store.commits == MAX_WRITE_ATTEMPTS
    assert store.devices["u1"]["lamp-0"]["state"]["on"] is False


def test_unchanged_state_is_not_written(store: CountingStore) -> None:
    token = token_for(store)
    reply = service(store).handle(token, execute_request([(["lamp-1"], [execution("OnOff", {"on": False})])]))
    assert reply.body["payload"]["commands"][0]["status"] == "SUCCESS"
    assert store.commits == 0


def test_a_refresh_token_is_no_bearer_token(store: CountingStore) -> None:
    refresh = tokens.issue(store, tokens.REFRESH, "u1", 3600, 1_800_000_000_000)
    assert service(store).handle(refresh, sync_request()).status == 401


@pytest.mark.parametrize("body", [None, [], "x", {"requestId": ""}, {"requestId": "r", "inputs": [1]}])
def test_malformed_bodies_never_raise(store: CountingStore, body: Any) -> None:
    reply = service(store).handle(token_for(store), body)
    assert reply.status in (200, 400)
