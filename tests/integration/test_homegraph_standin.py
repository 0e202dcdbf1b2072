"""The HomeGraph stand-in over HTTP: Google's validation, status codes, records, SYNC/QUERY driving and faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tools.homegraph_standin import Fault, StandIn, StaticTokens

LAMP = {
    "id": "lamp-1",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Desk lamp"},
    "willReportState": True,
}
CAMERA = {
    "id": "cam-1",
    "type": "action.devices.types.CAMERA",
    "traits": ["action.devices.traits.ObjectDetection"],
    "name": {"name": "Door camera"},
    "willReportState": False,
    "notificationSupportedByAgent": True,
}
LOCK = {
    "id": "lock-1",
    "type": "action.devices.types.LOCK",
    "traits": ["action.devices.traits.LockUnlock"],
    "name": {"name": "Front door"},
    "willReportState": True,
}


def post(standin: StandIn, method: str, body: Any, raw: str | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body)
    response = requests.post(
        f"{standin.url}/v1/devices:{method}", data=data, headers={"Content-Type": "application/json"}, timeout=10
    )
    return response.status_code, response.json()


def report(agent_user_id: str, states: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    devices: dict[str, Any] = {}
    if states is not None:
        devices["states"] = states
    if "notifications" in extra:
        devices["notifications"] = extra.pop("notifications")
    return {"requestId": "r-1", "agentUserId": agent_user_id, "payload": {"devices": devices}, **extra}


@pytest.fixture
def linked(homegraph_standin: StandIn) -> StandIn:
    homegraph_standin.link("alice", sync=False, devices=[LAMP, CAMERA, LOCK])
    return homegraph_standin


# requestSync


def test_request_sync_of_an_unknown_user_is_404_like_google(homegraph_standin: StandIn) -> None:
    status, body = post(homegraph_standin, "requestSync", {"agentUserId": "nobody", "async": True})
    assert status == 404
    assert body["error"]["status"] == "NOT_FOUND"
    assert body["error"]["code"] == 404
    [call] = homegraph_standin.calls("requestSync")
    assert call["status"] == 404
    assert call["agentUserId"] == "nobody"
    assert call["request"] == {"agentUserId": "nobody", "async": True}


def test_request_sync_of_an_unlinked_user_is_404(linked: StandIn) -> None:
    assert post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] == 200
    response = requests.delete(f"{linked.url}/v1/agentUsers/alice", timeout=10)
    assert response.status_code == 200
    assert response.json() == {}
    assert post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] == 404
    assert requests.delete(f"{linked.url}/v1/agentUsers/alice", timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"agentUserId": "alice", "async": True, "force": True}, 'Unknown name "force"'),
        ({"agentUserId": 7}, "Invalid value at 'agent_user_id' (TYPE_STRING), 7"),
        ({"agentUserId": "alice", "async": "yes"}, "Invalid value at 'async' (TYPE_BOOL)"),
        ({"async": True}, "invalid argument"),
        ({"agentUserId": ""}, "invalid argument"),
        ([1, 2], "Expected an object"),
    ],
)
def test_malformed_request_sync_bodies_get_400(linked: StandIn, body: Any, fragment: str) -> None:
    status, answer = post(linked, "requestSync", body)
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert fragment in answer["error"]["message"]


def test_invalid_json_gets_400_and_is_recorded_as_text(linked: StandIn) -> None:
    status, answer = post(linked, "requestSync", None, raw='{"agentUserId": "alice",')
    assert status == 400
    assert answer["error"]["message"].startswith("Invalid JSON payload received.")
    assert linked.calls("requestSync")[0]["request"] == '{"agentUserId": "alice",'


def test_snake_case_field_names_are_accepted_like_googles_parser(linked: StandIn) -> None:
    assert post(linked, "requestSync", {"agent_user_id": "alice", "async": True})[0] == 200


def test_async_request_sync_without_a_fulfillment_answers_and_records_the_failed_sync(linked: StandIn) -> None:
    status, body = post(linked, "requestSync", {"agentUserId": "alice", "async": True})
    assert (status, body) == (200, {})
    assert linked.wait_background(30)
    [sync] = linked.calls("fulfillment.SYNC")
    assert sync["status"] is None
    assert "no fulfillment" in sync["error"]


class SlowFulfillment:
    """A peer answering SYNC with fixed devices after a delay, or sooner once `release` is set (to hold a sync-mode
    requestSync open exactly as long as a test needs)."""

    def __init__(self, devices: list[dict[str, Any]], delay_s: float) -> None:
        outer = self
        self.release = threading.Event()
        self.seen: list[dict[str, Any]] = []
        self.authorizations: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append(body)
                outer.authorizations.append(self.headers.get("Authorization", ""))
                intent = body["inputs"][0]["intent"]
                if intent.endswith("SYNC"):
                    outer.release.wait(delay_s)
                    payload: dict[str, Any] = {"agentUserId": "alice", "devices": devices}
                else:
                    ids = [d["id"] for d in body["inputs"][0]["payload"]["devices"]]
                    payload = {"devices": {i: {"online": True, "status": "SUCCESS", "on": True} for i in ids}}
                data = json.dumps({"requestId": body["requestId"], "payload": payload}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_fulfillment() -> Iterator[Callable[[float], SlowFulfillment]]:
    started: list[SlowFulfillment] = []

    def start(delay_s: float) -> SlowFulfillment:
        peer = SlowFulfillment([LAMP], delay_s)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.release.set()
        peer.stop()


def test_a_second_concurrent_sync_mode_request_sync_gets_429(
    linked: StandIn, slow_fulfillment: Callable[[float], SlowFulfillment]
) -> None:
    peer = slow_fulfillment(60)  # held open until released below
    linked.fulfillment_url = peer.url
    linked.token_source = StaticTokens({"alice": "at.token-of-alice"})
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(post(linked, "requestSync", {"agentUserId": "alice", "async": False})[0])
    )
    first.start()
    deadline = time.monotonic() + 30
    while not peer.seen and time.monotonic() < deadline:  # the first is open: its SYNC reached the peer
        time.sleep(0.01)
    try:
        second_status, second = post(linked, "requestSync", {"agentUserId": "alice", "async": False})
    finally:
        peer.release.set()
    first.join(60)
    assert results == [200]
    assert second_status == 429
    assert second["error"]["status"] == "RESOURCE_EXHAUSTED"
    # async ones are queued instead, never refused
    assert post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] == 200
    assert peer.authorizations[0] == "Bearer at.token-of-alice"


def test_request_sync_runs_sync_then_query_and_keeps_what_they_say(
    linked: StandIn, slow_fulfillment: Callable[[float], SlowFulfillment]
) -> None:
    peer = slow_fulfillment(0.0)
    linked.fulfillment_url = peer.url
    linked.token_source = StaticTokens({"alice": "at.x"})
    assert post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] == 200
    assert linked.wait_background(30)
    intents = [body["inputs"][0]["intent"] for body in peer.seen]
    assert intents == ["action.devices.SYNC", "action.devices.QUERY"]
    assert peer.seen[1]["inputs"][0]["payload"]["devices"] == [{"id": "lamp-1"}]
    user = linked.user("alice")
    assert user is not None
    assert [d["id"] for d in user["devices"]] == ["lamp-1"]  # the SYNC replaced what was known
    assert linked.states("alice") == {"lamp-1": {"online": True, "on": True}}
    assert [c["method"] for c in linked.calls()] == ["requestSync", "fulfillment.SYNC", "fulfillment.QUERY"]


def test_link_runs_sync_like_account_linking(
    homegraph_standin: StandIn, slow_fulfillment: Callable[[float], SlowFulfillment]
) -> None:
    peer = slow_fulfillment(0.0)
    homegraph_standin.fulfillment_url = peer.url
    homegraph_standin.token_source = StaticTokens({"alice": "at.x"})
    response = requests.post(f"{homegraph_standin.url}/standin/users/alice:link", json={}, timeout=10)
    assert response.status_code == 200
    assert response.json()["synced"] is True
    assert response.json()["syncs"] == 1
    assert post(homegraph_standin, "requestSync", {"agentUserId": "alice", "async": True})[0] == 200


# reportStateAndNotification


def test_reported_states_are_kept_per_user_and_device(linked: StandIn) -> None:
    status, body = post(
        linked, "reportStateAndNotification", report("alice", {"lamp-1": {"on": True, "brightness": 30}})
    )
    assert (status, body) == (200, {"requestId": "r-1"})
    post(linked, "reportStateAndNotification", report("alice", {"lamp-1": {"brightness": 80, "online": True}}))
    assert linked.states("alice") == {"lamp-1": {"on": True, "brightness": 80, "online": True}}
    answer = requests.get(f"{linked.url}/standin/users/alice/states", timeout=10).json()
    assert answer == {"devices": {"lamp-1": {"on": True, "brightness": 80, "online": True}}}


def test_reported_state_for_an_unknown_device_or_user_is_404(linked: StandIn) -> None:
    assert post(linked, "reportStateAndNotification", report("alice", {"ghost": {"on": True}}))[0] == 404
    assert post(linked, "reportStateAndNotification", report("bob", {"lamp-1": {"on": True}}))[0] == 404
    assert linked.states("alice") == {}


def test_devices_are_unknown_until_google_has_processed_the_sync(
    homegraph_standin: StandIn, slow_fulfillment: Callable[[float], SlowFulfillment]
) -> None:
    homegraph_standin.fulfillment_url = slow_fulfillment(0.0).url
    homegraph_standin.token_source = StaticTokens({"alice": "at.x"})
    homegraph_standin.sync_settle_s = 3  # the first report must come inside it, even on a loaded machine
    assert homegraph_standin.link("alice")
    body = report("alice", {"lamp-1": {"on": True}})
    assert post(homegraph_standin, "reportStateAndNotification", body)[0] == 404
    deadline = time.monotonic() + 30
    while post(homegraph_standin, "reportStateAndNotification", body)[0] == 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert post(homegraph_standin, "reportStateAndNotification", body)[0] == 200, "known once the SYNC settled"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (report("alice", {"lamp-1": {"on": True, "color": {"spectrumRgb": 1}}}), 400, "['color']"),
        (report("alice", {"lamp-1": {"on": True}}, extra=1), 400, 'Unknown name "extra"'),
        ({"agentUserId": "alice", "payload": {"devices": {"states": {}, "colour": {}}}}, 400, "at 'payload.devices'"),
        ({"agentUserId": "alice", "payload": {"devices": {}}}, 400, "invalid argument"),
        ({"agentUserId": "alice"}, 400, "invalid argument"),
        (report("alice", {"lamp-1": "on"}), 400, "invalid argument"),
        (report("alice", None, notifications={"cam-1": {"ObjectDetection": {"priority": 0}}}), 400, "invalid"),
        (
            report("alice", None, eventId="e1", notifications={"lamp-1": {"ObjectDetection": {"priority": 0}}}),
            400,
            "no trait ObjectDetection",
        ),
        (
            report("alice", None, eventId="e1", notifications={"lock-1": {"LockUnlock": {"priority": 0}}}),
            400,
            "notificationSupportedByAgent",
        ),
    ],
)
def test_report_state_validation(linked: StandIn, body: dict[str, Any], status: int, fragment: str) -> None:
    code, answer = post(linked, "reportStateAndNotification", body)
    assert code == status, answer
    assert fragment in answer["error"]["message"] + json.dumps(answer["error"].get("details", []))
    assert linked.states("alice") == {}
    assert linked.notifications() == []


def test_notifications_are_recorded_once_per_event(linked: StandIn) -> None:
    notification = {
        "ObjectDetection": {"priority": 0, "detectionTimestamp": 1700000000000, "objects": {"named": ["Ann"]}}
    }
    body = report("alice", None, eventId="doorbell-1", notifications={"cam-1": notification})
    assert post(linked, "reportStateAndNotification", body)[0] == 200
    assert post(linked, "reportStateAndNotification", body)[0] == 200
    first, second = linked.notifications("alice")
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert first["notification"] == notification["ObjectDetection"]
    # follow-up responses need no notificationSupportedByAgent
    follow_up = {"LockUnlock": {"priority": 0, "followUpResponse": {"status": "SUCCESS", "followUpToken": "t"}}}
    body = report("alice", {"lock-1": {"isLocked": True}}, eventId="cmd-1", notifications={"lock-1": follow_up})
    assert post(linked, "reportStateAndNotification", body)[0] == 200


# query, sync, control endpoints


def test_query_and_sync_answer_what_google_knows(linked: StandIn) -> None:
    post(linked, "reportStateAndNotification", report("alice", {"lamp-1": {"on": False}}))
    status, body = post(
        linked,
        "query",
        {"requestId": "q", "agentUserId": "alice", "inputs": [{"payload": {"devices": [{"id": "lamp-1"}]}}]},
    )
    assert status == 200
    assert body == {"requestId": "q", "payload": {"devices": {"lamp-1": {"on": False}}}}
    status, body = post(linked, "sync", {"requestId": "s", "agentUserId": "alice"})
    assert status == 200
    assert sorted(d["id"] for d in body["payload"]["devices"]) == ["cam-1", "lamp-1", "lock-1"]
    assert post(linked, "query", {"agentUserId": "alice", "inputs": [{"payload": {"device": []}}]})[0] == 400


def test_faults_answer_a_status_a_number_of_times(linked: StandIn) -> None:
    response = requests.put(
        f"{linked.url}/standin/faults",
        json={"faults": [{"method": "requestSync", "status": 503, "times": 2}]},
        timeout=10,
    )
    assert response.status_code == 200
    statuses = [post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    calls = linked.calls("requestSync")
    assert [c["fault"]["status"] if "fault" in c else None for c in calls] == [503, 503, None]
    # other methods were not touched
    assert post(linked, "reportStateAndNotification", report("alice", {"lamp-1": {"on": True}}))[0] == 200


def test_fault_delays_rates_and_users(linked: StandIn) -> None:
    linked.set_faults([Fault(method="*", delay_s=0.3, agent_user_id="alice", times=1)])
    started = time.monotonic()
    assert post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] == 200
    assert time.monotonic() - started >= 0.3
    linked.set_faults([{"method": "requestSync", "status": 500, "rate": 0.0}])
    assert {post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] for _ in range(5)} == {200}
    linked.set_faults([{"method": "requestSync", "status": 429, "agentUserId": "bob"}])
    assert post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] == 200
    linked.set_faults([{"method": "requestSync", "status": 429, "rate": 0.5}])
    hits = [post(linked, "requestSync", {"agentUserId": "alice", "async": True})[0] for _ in range(40)]
    assert 5 < hits.count(429) < 35


@pytest.mark.parametrize(
    "fault",
    [{"status": 200}, {"method": "requestSink"}, {"rate": 2}, {"delayS": -1}, {"code": 500}],
)
def test_invalid_faults_are_refused(homegraph_standin: StandIn, fault: dict[str, Any]) -> None:
    response = requests.put(f"{homegraph_standin.url}/standin/faults", json={"faults": [fault]}, timeout=10)
    assert response.status_code == 400
    assert homegraph_standin.faults() == []


def test_the_record_can_be_read_and_filtered_over_http(linked: StandIn) -> None:
    post(linked, "requestSync", {"agentUserId": "alice", "async": True})
    post(linked, "requestSync", {"agentUserId": "bob", "async": True})
    linked.wait_background(30)
    calls = requests.get(f"{linked.url}/standin/calls", params={"method": "requestSync"}, timeout=10).json()["calls"]
    assert [(c["agentUserId"], c["status"]) for c in calls] == [("alice", 200), ("bob", 404)]
    later = requests.get(f"{linked.url}/standin/calls", params={"since": calls[0]["seq"]}, timeout=10).json()
    assert calls[0]["seq"] not in [c["seq"] for c in later["calls"]]
    assert all(c["caller"] == "anonymous" for c in calls)
    waited = requests.post(
        f"{linked.url}/standin/wait", json={"method": "requestSync", "count": 2, "timeoutS": 1}, timeout=10
    ).json()
    assert len(waited["calls"]) == 2
    assert requests.get(f"{linked.url}/standin/users/nobody", timeout=10).status_code == 404
    assert requests.get(f"{linked.url}/standin/nothing", timeout=10).status_code == 404
