"""The fulfillment through functions-framework's test client on the real Firestore emulator.

Every SYNC, QUERY and EXECUTE response is validated against Google's schemas.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

import pytest

from functions.fulfillment.requests import intent_of
from tests.integration.conftest import Google
from tests.schema_oracle import oracle
from tools.google import disconnect_request, execute_request, execution, query_request, sync_request

pytestmark = pytest.mark.emulator

LAMP: dict[str, Any] = {
    "id": "lamp-1",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Desk lamp", "nicknames": ["reading light"], "defaultNames": ["Lamp 3000"]},
    "willReportState": True,
    "roomHint": "Office",
    "deviceInfo": {"manufacturer": "Acme", "model": "L3000", "hwVersion": "1", "swVersion": "2.1"},
    "customData": {"serial": "A-1"},
    "otherDeviceIds": [{"deviceId": "local-lamp-1"}],
    "notificationSupportedByAgent": False,
    "state": {"on": False, "brightness": 40},
}
PLUG: dict[str, Any] = {
    "id": "plug-1",
    "type": "action.devices.types.OUTLET",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Kettle plug"},
    "willReportState": True,
    "state": {"on": True},
}
SENSOR_SWITCH: dict[str, Any] = {
    "id": "switch-ro",
    "type": "action.devices.types.SWITCH",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Read-only switch"},
    "willReportState": True,
    "attributes": {"queryOnlyOnOff": True},
    "state": {"on": True},
}


def device(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(base), **changes}


def stored_state(user: str, device_id: str) -> dict[str, Any]:
    from functions.fulfillment.store import FirestoreDeviceRegistry

    document = FirestoreDeviceRegistry().get(user, device_id)
    assert document is not None
    return dict(document["state"])


@pytest.fixture
def alice(google: Callable[[str], Google], add_devices: Callable[..., None]) -> Google:
    add_devices("alice", [device(LAMP), device(PLUG), device(SENSOR_SWITCH)])
    return google("alice")


# SYNC


def test_sync_lists_every_device_with_all_fields(alice: Google) -> None:
    status, body = alice.post(sync_request("req-sync-1"))
    assert status == 200
    oracle().assert_response("sync", body)
    assert body["requestId"] == "req-sync-1"
    assert body["payload"]["agentUserId"] == "alice"
    by_id = {d["id"]: d for d in body["payload"]["devices"]}
    assert set(by_id) == {"lamp-1", "plug-1", "switch-ro"}
    lamp = by_id["lamp-1"]
    for field in (
        "type",
        "traits",
        "name",
        "willReportState",
        "roomHint",
        "deviceInfo",
        "customData",
        "otherDeviceIds",
        "notificationSupportedByAgent",
    ):
        assert lamp[field] == LAMP[field], field
    assert "state" not in lamp
    assert "online" not in lamp
    assert by_id["switch-ro"]["attributes"] == {"queryOnlyOnOff": True, "commandOnlyOnOff": False}


def test_sync_leaves_out_an_invalid_device_and_keeps_the_rest(alice: Google, firestore_db: Any) -> None:
    devices = firestore_db.collection("users").document("alice").collection("devices")
    devices.document("broken").set({"type": "action.devices.types.NOPE", "traits": [], "name": {}})
    status, body = alice.post(sync_request())
    assert status == 200
    oracle().assert_response("sync", body)
    assert {d["id"] for d in body["payload"]["devices"]} == {"lamp-1", "plug-1", "switch-ro"}


def test_sync_of_a_user_without_devices_is_empty(google: Callable[[str], Google]) -> None:
    status, body = google("nobody").post(sync_request())
    assert status == 200
    oracle().assert_response("sync", body)
    assert body["payload"] == {"agentUserId": "nobody", "devices": []}


# QUERY


def test_query_returns_states_online_and_status(alice: Google) -> None:
    status, body = alice.post(query_request(["lamp-1", "plug-1"], "req-q"))
    assert status == 200
    oracle().assert_response("query", body)
    assert body["requestId"] == "req-q"
    devices = body["payload"]["devices"]
    assert devices["lamp-1"] == {"online": True, "status": "SUCCESS", "on": False, "brightness": 40}
    assert devices["plug-1"] == {"online": True, "status": "SUCCESS", "on": True}
    oracle().assert_states(LAMP["traits"], devices["lamp-1"])


def test_query_unknown_and_foreign_devices_are_not_found_alone(alice: Google, add_devices: Callable[..., None]) -> None:
    add_devices("bob", [device(PLUG, id="bobs-plug")])
    status, body = alice.post(query_request(["lamp-1", "nope", "bobs-plug"]))
    assert status == 200
    oracle().assert_response("query", body)
    devices = body["payload"]["devices"]
    assert devices["lamp-1"]["status"] == "SUCCESS"
    for missing in ("nope", "bobs-plug"):
        assert devices[missing] == {"online": False, "status": "ERROR", "errorCode": "deviceNotFound"}


def test_query_of_an_offline_device(google: Callable[[str], Google], add_devices: Callable[..., None]) -> None:
    add_devices("carol", [device(PLUG, online=False)])
    _, body = google("carol").post(query_request(["plug-1"]))
    oracle().assert_response("query", body)
    assert body["payload"]["devices"]["plug-1"] == {"online": False, "status": "OFFLINE", "errorCode": "deviceOffline"}


# EXECUTE


def test_execute_runs_every_command_on_every_device_and_groups_results(alice: Google) -> None:
    request = execute_request(
        [
            (["lamp-1", "plug-1"], [execution("OnOff", {"on": True})]),
            (["lamp-1"], [execution("BrightnessAbsolute", {"brightness": 75})]),
            (["switch-ro", "ghost"], [execution("OnOff", {"on": False})]),
        ],
        "req-x",
    )
    status, body = alice.post(request)
    assert status == 200
    oracle().assert_response("execute", body)
    assert body["requestId"] == "req-x"
    results = body["payload"]["commands"]
    ids = [i for r in results for i in r["ids"]]
    assert sorted(ids) == ["ghost", "lamp-1", "plug-1", "switch-ro"], "each device exactly once"
    by_id = {i: r for r in results for i in r["ids"]}
    assert by_id["lamp-1"]["status"] == "SUCCESS"
    assert by_id["lamp-1"]["states"] == {"online": True, "on": True, "brightness": 75}
    assert by_id["plug-1"]["states"] == {"online": True, "on": True}
    assert by_id["switch-ro"] == {"ids": ["switch-ro"], "status": "ERROR", "errorCode": "functionNotSupported"}
    assert by_id["ghost"]["errorCode"] == "deviceNotFound"
    assert stored_state("alice", "lamp-1") == {"on": True, "brightness": 75}
    assert stored_state("alice", "switch-ro") == {"on": True}


def test_execute_groups_devices_with_the_same_outcome(alice: Google, add_devices: Callable[..., None]) -> None:
    add_devices("alice", [device(PLUG, id="plug-2", state={"on": False})])
    _, body = alice.post(execute_request([(["plug-1", "plug-2"], [execution("OnOff", {"on": False})])]))
    oracle().assert_response("execute", body)
    assert body["payload"]["commands"] == [
        {"ids": ["plug-1", "plug-2"], "status": "SUCCESS", "states": {"online": True, "on": False}}
    ]


def test_execute_refuses_out_of_range_and_foreign_commands_without_writing(alice: Google) -> None:
    _, body = alice.post(
        execute_request(
            [
                (["lamp-1"], [execution("OnOff", {"on": True}), execution("BrightnessAbsolute", {"brightness": 140})]),
                (["plug-1"], [execution("BrightnessAbsolute", {"brightness": 10})]),
            ]
        )
    )
    oracle().assert_response("execute", body)
    by_id = {i: r for r in body["payload"]["commands"] for i in r["ids"]}
    assert by_id["lamp-1"]["errorCode"] == "valueOutOfRange"
    assert by_id["plug-1"]["errorCode"] == "functionNotSupported"
    # All of a device's commands take effect or none do: the OnOff before the refused command is not kept.
    assert stored_state("alice", "lamp-1") == {"on": False, "brightness": 40}
    assert stored_state("alice", "plug-1") == {"on": True}


def test_execute_on_an_offline_device(google: Callable[[str], Google], add_devices: Callable[..., None]) -> None:
    add_devices("dave", [device(PLUG, online=False)])
    _, body = google("dave").post(execute_request([(["plug-1"], [execution("OnOff", {"on": False})])]))
    oracle().assert_response("execute", body)
    assert body["payload"]["commands"] == [{"ids": ["plug-1"], "status": "OFFLINE", "errorCode": "deviceOffline"}]
    assert stored_state("dave", "plug-1") == {"on": True}


def test_execute_with_malformed_params_is_a_device_error(alice: Google) -> None:
    status, body = alice.post(execute_request([(["lamp-1"], [execution("BrightnessAbsolute", {"brightness": "x"})])]))
    assert status == 200
    oracle().assert_response("execute", body)
    assert body["payload"]["commands"][0]["status"] == "ERROR"
    assert stored_state("alice", "lamp-1") == {"on": False, "brightness": 40}


def test_concurrent_relative_executes_lose_no_update(alice: Google) -> None:
    rounds = 12
    failures: list[Any] = []

    def nudge() -> None:
        status, body = alice.post(
            execute_request([(["lamp-1"], [execution("BrightnessRelative", {"brightnessRelativePercent": 5})])])
        )
        if status != 200 or body["payload"]["commands"][0]["status"] != "SUCCESS":
            failures.append(body)

    threads = [threading.Thread(target=nudge) for _ in range(rounds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert stored_state("alice", "lamp-1")["brightness"] == 40 + 5 * rounds


# DISCONNECT and auth


def test_disconnect_revokes_every_token_and_unlinks(
    alice: Google, issue_token: Callable[..., str], firestore_db: Any
) -> None:
    second = issue_token("alice")
    status, body = alice.post(disconnect_request())
    assert (status, body) == (200, {})
    oracle().assert_valid(oracle().intent("disconnect", "response"), body, "DISCONNECT response")
    for token in (alice.token, second):
        status, body = alice.post(sync_request(), token=token)
        assert status == 401
        assert body["error"] == "invalid_token"
    user = firestore_db.collection("users").document("alice").get().to_dict()
    assert user["linked"] is False
    remaining = [t for t in firestore_db.collection("tokens").stream() if t.get("agentUserId") == "alice"]
    assert remaining == []


@pytest.mark.parametrize("token", [None, "", "garbage", "at.YWxpY2U.unknown-secret", "rt.YWxpY2U.x"])
def test_missing_or_unknown_tokens_get_401(alice: Google, token: str | None) -> None:
    response = alice.client.post(
        "/", json=query_request(["lamp-1"]), headers={"Authorization": f"Bearer {token}"} if token is not None else {}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert "lamp-1" not in response.get_data(as_text=True)


def test_expired_token_gets_401(alice: Google, issue_token: Callable[..., str]) -> None:
    from functions.core import tokens
    from functions.platform.firestore import FirestoreTokenStore

    expired = tokens.issue(FirestoreTokenStore(), tokens.ACCESS, "alice", -1, 1_000)
    status, _ = alice.post(query_request(["lamp-1"]), token=expired)
    assert status == 401


def test_a_token_cannot_be_moved_to_another_user(alice: Google, add_devices: Callable[..., None]) -> None:
    """The user named in the token must be the record's user: editing it to bob's id gets nothing."""
    import base64

    add_devices("bob", [device(PLUG, id="bobs-plug")])
    kind, _, secret = (alice.token or "").split(".")
    forged = f"{kind}.{base64.urlsafe_b64encode(b'bob').decode().rstrip('=')}.{secret}"
    status, _ = alice.post(query_request(["bobs-plug"]), token=forged)
    assert status == 401


# Bad input


@pytest.mark.parametrize(
    ("raw", "expected_status"),
    [
        (b"{not json", 400),
        (b"", 400),
        (b"[]", 400),
        (b'"text"', 400),
        (b'{"requestId": 5, "inputs": []}', 400),
        (b'{"inputs": [{"intent": "action.devices.SYNC"}]}', 400),
        (b'{"requestId": "r1", "inputs": [{"intent": "action.devices.SYNC"}], "x": NaN}', 400),
        (b"\xff\xfe", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
    ],
)
def test_unreadable_bodies_get_a_json_400(alice: Google, raw: bytes, expected_status: int) -> None:
    status, body = alice.post(None, raw=raw)
    assert status == expected_status
    assert body["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        {"requestId": "r1"},
        {"requestId": "r1", "inputs": []},
        {"requestId": "r1", "inputs": [{"intent": "action.devices.FROBNICATE"}]},
        {"requestId": "r1", "inputs": [{"intent": "action.devices.QUERY", "payload": {"devices": "lamp-1"}}]},
        {"requestId": "r1", "inputs": [{"intent": "action.devices.QUERY", "payload": {"devices": [{"id": 7}]}}]},
        {"requestId": "r1", "inputs": [{"intent": "action.devices.EXECUTE", "payload": {"commands": [{}]}}]},
        {
            "requestId": "r1",
            "inputs": [
                {
                    "intent": "action.devices.EXECUTE",
                    "payload": {
                        "commands": [
                            {
                                "devices": [{"id": "lamp-1"}],
                                "execution": [{"command": "action.devices.commands.OnOff", "params": [True]}],
                            }
                        ]
                    },
                }
            ],
        },
        {"requestId": "r1", "inputs": [sync_request()["inputs"][0], sync_request()["inputs"][0]]},
    ],
)
def test_malformed_requests_get_protocol_error_with_request_id(alice: Google, body: dict[str, Any]) -> None:
    status, answer = alice.post(body)
    assert status == 200
    assert answer["requestId"] == "r1"
    assert answer["payload"]["errorCode"] == "protocolError"
    assert answer["payload"]["debugString"]
    intent = intent_of(body)
    schema_name = intent.rsplit(".", 1)[-1].lower() if intent else "execute"
    oracle().assert_response(schema_name, answer)
    assert stored_state("alice", "lamp-1") == {"on": False, "brightness": 40}


def test_malformed_request_with_a_bad_token_gets_401_not_400(alice: Google) -> None:
    status, _ = alice.post(None, raw=b"{broken", token="at.YWxpY2U.wrong")
    assert status == 401


def test_bodies_over_a_megabyte_get_413(alice: Google) -> None:
    big = query_request(["lamp-1"]) | {"padding": "x" * 1_100_000}
    status, body = alice.post(big)
    assert status == 413
    assert body["error"] == "request_too_large"


def test_only_post_is_accepted(alice: Google) -> None:
    response = alice.client.get("/", headers={"Authorization": f"Bearer {alice.token}"})
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
