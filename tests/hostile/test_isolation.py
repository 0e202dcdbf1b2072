"""Cross-user isolation: with two linked users, nothing of one user's devices reaches or moves for the other."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Google
from tests.schema_oracle import oracle
from tools.google import (
    disconnect_request,
    execute_request,
    execution,
    query_request,
    sync_request,
)

pytestmark = pytest.mark.emulator


def lamp(device_id: str, name: str, brightness: int) -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.LIGHT",
        "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
        "name": {"name": name},
        "willReportState": True,
        "customData": {"secret": f"{name}-custom"},
        "state": {"on": True, "brightness": brightness},
    }


BOB_MARKERS = ("bob-only", "Bob's secret lamp", "bob-custom", "77")


@pytest.fixture
def users(google: Callable[[str], Google], add_devices: Callable[..., None]) -> tuple[Google, Google]:
    add_devices("alice", [lamp("shared-id", "Alice lamp", 10), lamp("alice-only", "Alice spare", 11)])
    add_devices("bob", [lamp("shared-id", "Bob's secret lamp", 77), lamp("bob-only", "Bob's secret lamp", 77)])
    return google("alice"), google("bob")


def bobs_documents(db: Any) -> dict[str, Any]:
    return {s.id: s.to_dict() for s in db.collection("users").document("bob").collection("devices").stream()}


def assert_no_leak(body: Any) -> None:
    text = json.dumps(body)
    for marker in ("Bob's secret lamp", "bob-custom"):
        assert marker not in text
    assert '"brightness": 77' not in text


def test_every_intent_with_the_other_users_ids_reveals_and_changes_nothing(
    users: tuple[Google, Google], firestore_db: Any
) -> None:
    alice, _ = users
    before = bobs_documents(firestore_db)

    _, synced = alice.post(sync_request())
    oracle().assert_response("sync", synced)
    assert {d["id"] for d in synced["payload"]["devices"]} == {"shared-id", "alice-only"}
    assert_no_leak(synced)

    _, queried = alice.post(query_request(["bob-only", "shared-id"]))
    oracle().assert_response("query", queried)
    assert queried["payload"]["devices"]["bob-only"]["errorCode"] == "deviceNotFound"
    assert queried["payload"]["devices"]["shared-id"]["brightness"] == 10  # her own device of the same id
    assert_no_leak(queried)

    _, executed = alice.post(
        execute_request([(["bob-only", "shared-id"], [execution("BrightnessAbsolute", {"brightness": 1})])])
    )
    oracle().assert_response("execute", executed)
    by_id = {i: r for r in executed["payload"]["commands"] for i in r["ids"]}
    assert by_id["bob-only"]["errorCode"] == "deviceNotFound"
    assert by_id["shared-id"]["status"] == "SUCCESS"
    assert_no_leak(executed)

    assert alice.post(disconnect_request()) == (200, {})
    assert bobs_documents(firestore_db) == before


def test_disconnect_of_one_user_leaves_the_other_linked(users: tuple[Google, Google], firestore_db: Any) -> None:
    alice, bob = users
    alice.post(disconnect_request())
    status, body = bob.post(query_request(["bob-only"]))
    assert status == 200
    assert body["payload"]["devices"]["bob-only"]["brightness"] == 77
    assert firestore_db.collection("users").document("bob").get().to_dict()["linked"] is True


def test_swapped_and_forged_tokens_get_nothing(users: tuple[Google, Google]) -> None:
    alice, bob = users
    forged = []
    for token, other in ((alice.token or "", "bob"), (bob.token or "", "alice")):
        kind, _, secret = token.split(".")
        forged.append(f"{kind}.{base64.urlsafe_b64encode(other.encode()).decode().rstrip('=')}.{secret}")
    forged.append(f"rt.{(alice.token or '').split('.', 1)[1]}")  # the right secret, as another kind
    for token in forged:
        for request in (sync_request(), query_request(["bob-only", "alice-only"]), disconnect_request()):
            status, body = alice.post(request, token=token)
            assert status == 401, (token, request)
            assert_no_leak(body)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(guesses=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=20))
def test_guessed_ids_find_nothing_of_bobs(users: tuple[Google, Google], guesses: list[str]) -> None:
    alice, _ = users
    guesses = [g for g in guesses if g not in {"shared-id", "alice-only"}] + ["bob-only"]
    _, body = alice.post(query_request(guesses))
    oracle().assert_response("query", body)
    assert all(d["status"] == "ERROR" for d in body["payload"]["devices"].values())
    assert_no_leak(body)
