"""Every way a device cloud connects, end to end on the emulators: the "pubsub" backend (every command on the
commands topic, quick and long-running answers, the pending timeout), the "webhook" backend against a real HTTP
endpoint the test runs (signatures, timeouts, 5xx, invalid answers, OFFLINE and ERROR, several devices in one
call), Matter deduplication fields in SYNC, the client for device clouds on the Pub/Sub emulator, and the
simulator. Through the same served report_state, fulfillment and stand-in as tests/integration/test_report_state.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import devicecloud
from tests.conftest import PROJECT
from tests.integration.conftest import Google
from tests.integration.test_report_state import (  # noqa: F401 - fixtures
    COMMANDS,
    DEVICE_CLOUD,
    TOPIC,
    Pipeline,
    pipeline,
    served,
)
from tests.schema_oracle import oracle
from tests.unit.reporting_helpers import lamp, lock
from tools.google import execute_request, execution, sync_request

pytestmark = pytest.mark.emulator

SECRET = "a-webhook-secret-for-the-tests"
Answer = Callable[[dict[str, Any]], tuple[int, Any]]


@pytest.fixture
def device_cloud(pipeline: Pipeline) -> Iterator[str]:  # noqa: F811
    """A pull subscription of the commands topic of the test's own, as a maker's cloud has (a stream of an earlier
    test that the emulator still thinks open gets no message of this one)."""
    from tools.pubsub_local import create_subscription, subscriber

    name = f"{DEVICE_CLOUD}-{uuid.uuid4().hex[:6]}"
    create_subscription(PROJECT, COMMANDS, name)
    yield name
    subscriber().delete_subscription(subscription=f"projects/{PROJECT}/subscriptions/{name}")


def pull_commands(subscription: str, expected: int, timeout_s: float = 15) -> list[devicecloud.Command]:
    """The commands on the commands topic, through the client (its flow-controlled pull subscription)."""
    got: list[devicecloud.Command] = []
    done = threading.Event()

    def handler(command: devicecloud.Command) -> None:
        got.append(command)
        if len(got) >= expected:
            done.set()

    future = devicecloud.DeviceCloud(PROJECT).subscribe_commands(handler, subscription=subscription)
    try:
        assert done.wait(timeout_s), f"{len(got)} of {expected} commands on {COMMANDS}"
        time.sleep(0.3)  # and no more
    finally:
        future.cancel()
    return got


def cloud() -> devicecloud.DeviceCloud:
    return devicecloud.DeviceCloud(PROJECT, state_topic=TOPIC)


def follow_up(body: dict[str, Any], device_id: str, trait: str) -> dict[str, Any]:
    response: dict[str, Any] = body["payload"]["devices"]["notifications"][device_id][trait]["followUpResponse"]
    return response


def results_by_device(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    oracle().assert_response("execute", answer)
    return {device_id: result for result in answer["payload"]["commands"] for device_id in result["ids"]}


# pubsub


def test_every_command_of_a_pubsub_device_reaches_the_topic_and_the_long_running_one_completes_later(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    device_cloud: str,
) -> None:
    pipeline.link("alice", {**lamp("lamp-1"), "backend": "pubsub"}, {**lock(), "backend": "pubsub"})
    request = execute_request(
        [(["lamp-1"], [execution("OnOff", {"on": True})]), (["front-door"], [execution("LockUnlock", {"lock": True})])]
    )
    results = results_by_device(google("alice").post(request)[1])
    assert results["lamp-1"]["status"] == "SUCCESS"
    assert results["front-door"]["status"] == "PENDING"  # long-running: PENDING without Google's token too
    assert pipeline.device("lamp-1")["state"]["on"] is True
    assert pipeline.device("front-door")["state"]["isLocked"] is False
    commands = {command.device_id: command for command in pull_commands(device_cloud, 2)}
    assert commands["lamp-1"].expects_result is False
    assert commands["lamp-1"].params == {"on": True}
    assert commands["front-door"].expects_result is True
    assert commands["front-door"].name == "LockUnlock"
    # The maker's cloud finished locking: the state changes now, and only now.
    locked = commands["front-door"]
    cloud().complete(locked.command_id, "alice", "front-door", {"isLocked": True})
    pipeline.settle(1)
    [body] = pipeline.validated()
    assert body["payload"]["devices"]["states"]["front-door"]["isLocked"] is True
    assert "notifications" not in body["payload"]["devices"]  # no token: no follow-up
    assert pipeline.device("front-door")["state"]["isLocked"] is True
    pending = pipeline.db.document(f"users/alice/followUps/{locked.command_id}").get().to_dict()
    assert pending["completedBy"]
    assert "giveUpAt" not in pending


def test_a_pending_command_nobody_completes_is_given_up_with_a_failure(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    device_cloud: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PENDING_TIMEOUT_S", "1")
    caplog.set_level(logging.INFO)
    pipeline.link("alice", {**lock(), "backend": "pubsub"})
    params = {"lock": True, "followUpToken": "tok-timeout"}
    request = execute_request([(["front-door"], [execution("LockUnlock", params)])])
    assert results_by_device(google("alice").post(request)[1])["front-door"]["status"] == "PENDING"
    [command] = pull_commands(device_cloud, 1)
    time.sleep(1.2)
    # Cloud Scheduler's minute: the sweep's message on the state topic.
    pipeline.publish(b"{}", {"kind": "pending-timeouts"})
    pipeline.settle(1)
    [body] = pipeline.validated()
    assert follow_up(body, "front-door", "LockUnlock") == {
        "status": "FAILURE",
        "errorCode": "deviceOffline",
        "followUpToken": "tok-timeout",
    }
    assert any(r.getMessage().startswith("pending command given up") for r in caplog.records)
    document = pipeline.db.document(f"users/alice/followUps/{command.command_id}")
    assert document.get().to_dict()["completedBy"]
    # The lock did lock, late: its state is reported; Google hears no second follow-up.
    cloud().complete(command.command_id, "alice", "front-door", {"isLocked": True})
    pipeline.settle(2)
    late = pipeline.validated()[-1]
    assert late["payload"]["devices"]["states"]["front-door"]["isLocked"] is True
    assert "notifications" not in late["payload"]["devices"]
    # The next sweep finds the follow-up reported: the command is no longer overdue, and nothing more is sent.
    pipeline.publish(b"{}", {"kind": "pending-timeouts"})
    pipeline.settle(3)
    assert "giveUpAt" not in document.get().to_dict()
    assert len(pipeline.validated()) == 2


# webhook


class MakerEndpoint:
    """The maker's HTTPS API, played by a small HTTP server: it checks every call's signature with the client's
    `verify_webhook` (401 if it fails) and answers with `answer(call)`."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.answer: Answer = self.all_succeed
        self.secret = SECRET
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                endpoint.calls.append((headers, body))
                try:
                    devicecloud.verify_webhook(headers, body, endpoint.secret)
                except devicecloud.WebhookVerificationError as refused:
                    status, answer = 401, {"error": str(refused)}
                else:
                    status, answer = endpoint.answer(json.loads(body))
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/smarthome"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def all_succeed(call: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"results": [{"commandId": c["commandId"], "status": "SUCCESS"} for c in call["commands"]]}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def maker(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakerEndpoint]:  # noqa: F811
    endpoint = MakerEndpoint()
    monkeypatch.setenv("WEBHOOK_URL", endpoint.url)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WEBHOOK_TIMEOUT_S", "10")  # a healthy answer is never late, even on a loaded machine
    yield endpoint
    endpoint.stop()


def test_a_webhook_call_is_signed_holds_every_device_and_its_states_are_stored(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    maker: MakerEndpoint,
) -> None:
    pipeline.link("alice", *({**lamp(f"lamp-{n}"), "backend": "webhook"} for n in (1, 2, 3)))

    def answer(call: dict[str, Any]) -> tuple[int, Any]:
        states = {"lamp-1": {"on": True, "brightness": 80}, "lamp-2": {"on": True}}
        results = []
        for command in call["commands"]:
            result = {"commandId": command["commandId"], "status": "SUCCESS"}
            if command["deviceId"] in states:
                result["states"] = states[command["deviceId"]]
            results.append(result)
        return 200, {"results": results}

    maker.answer = answer
    request = execute_request([(["lamp-1", "lamp-2", "lamp-3"], [execution("OnOff", {"on": True})])])
    results = results_by_device(google("alice").post(request)[1])
    [(headers, body)] = maker.calls  # one call for all three devices
    call = json.loads(body)
    assert call["agentUserId"] == "alice"
    assert call["requestId"] == request["requestId"]
    assert [(c["deviceId"], c["command"], c["params"], c["expectsResult"]) for c in call["commands"]] == [
        (f"lamp-{n}", "action.devices.commands.OnOff", {"on": True}, False) for n in (1, 2, 3)
    ]
    assert headers["X-Smarthome-Signature"].startswith("sha256=")
    assert {r["status"] for r in results.values()} == {"SUCCESS"}
    assert results["lamp-1"]["states"]["brightness"] == 80
    assert pipeline.device("lamp-1")["state"] == {"on": True, "brightness": 80}  # the maker's states, stored
    assert pipeline.device("lamp-3")["state"] == {"on": True, "brightness": 10}  # SUCCESS alone: what it sets
    # The same call replayed more than five minutes later is refused, as is one with another secret.
    with pytest.raises(devicecloud.WebhookVerificationError, match="more than 300 s"):
        devicecloud.verify_webhook(headers, body, SECRET, now=int(headers["X-Smarthome-Timestamp"]) + 301)
    with pytest.raises(devicecloud.WebhookVerificationError, match="does not match"):
        devicecloud.verify_webhook(headers, body, "another secret")


def test_a_call_signed_with_another_secret_is_refused_and_its_devices_answer_hard_error(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    maker: MakerEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    maker.secret = "the maker's own idea of the secret"
    pipeline.link("alice", {**lamp("lamp-1"), "backend": "webhook"})
    request = execute_request([(["lamp-1"], [execution("OnOff", {"on": True})])])
    [result] = google("alice").post(request)[1]["payload"]["commands"]
    assert (result["status"], result["errorCode"]) == ("ERROR", "hardError")
    assert pipeline.device("lamp-1")["state"]["on"] is False
    [record] = [r for r in caplog.records if r.getMessage().startswith("webhook call failed")]
    assert "401" in getattr(record, "reason")  # noqa: B009
    assert SECRET not in caplog.text


SLOW_WEBHOOK_RELEASE = threading.Event()  # set when the test has its answer: the slow webhook then answers
SLOW_WEBHOOK_ANSWERED: list[float] = []


def slow(call: dict[str, Any]) -> tuple[int, Any]:
    SLOW_WEBHOOK_RELEASE.wait(30)
    SLOW_WEBHOOK_ANSWERED.append(time.monotonic())
    return 200, {"results": []}


def invalid_states(call: dict[str, Any]) -> tuple[int, Any]:
    results = [
        {"commandId": c["commandId"], "status": "SUCCESS", "states": {"colour": "red"}} for c in call["commands"]
    ]
    return 200, {"results": results}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (slow, "transientError"),
        (lambda call: (503, {"error": "down for maintenance"}), "transientError"),
        (lambda call: (200, b"<html>not json</html>"), "hardError"),
        (invalid_states, "hardError"),
    ],
    ids=["slow", "5xx", "not-json", "invalid-states"],
)
def test_a_webhook_that_fails_answers_an_error_in_time_and_never_a_5xx(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    maker: MakerEndpoint,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    answer: Answer,
    expected: str,
) -> None:
    monkeypatch.setenv("WEBHOOK_TIMEOUT_S", "0.5")
    maker.answer = answer
    pipeline.link("alice", {**lamp("lamp-1"), "backend": "webhook"})
    SLOW_WEBHOOK_RELEASE.clear()
    SLOW_WEBHOOK_ANSWERED.clear()
    try:
        status, body = google("alice").post(execute_request([(["lamp-1"], [execution("OnOff", {"on": True})])]))
        assert not SLOW_WEBHOOK_ANSWERED, "EXECUTE answered before the slow webhook did (WEBHOOK_TIMEOUT_S is 0.5 s)"
    finally:
        SLOW_WEBHOOK_RELEASE.set()
    assert status == 200
    [result] = results_by_device(body).values()
    assert (result["status"], result["errorCode"]) == ("ERROR", expected)
    assert pipeline.device("lamp-1")["state"]["on"] is False
    if expected == "hardError":
        assert any("colour" in getattr(r, "reason", "") or "JSON" in getattr(r, "reason", "") for r in caplog.records)


def test_offline_error_and_pending_answers_of_the_maker(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    maker: MakerEndpoint,
) -> None:
    pipeline.link(
        "alice",
        {**lamp("asleep"), "backend": "webhook"},
        {**lamp("broken"), "backend": "webhook"},
        {**lock(), "backend": "webhook"},
    )
    answers = {
        "asleep": {"status": "OFFLINE"},
        "broken": {"status": "ERROR", "errorCode": "deviceTurnedOff"},
        "front-door": {"status": "PENDING"},
    }
    maker.answer = lambda call: (
        200,
        {"results": [{"commandId": c["commandId"], **answers[c["deviceId"]]} for c in call["commands"]]},
    )
    request = execute_request(
        [
            (["asleep", "broken"], [execution("OnOff", {"on": True})]),
            (["front-door"], [execution("LockUnlock", {"lock": True, "followUpToken": "tok-webhook"})]),
        ]
    )
    results = results_by_device(google("alice").post(request)[1])
    assert (results["asleep"]["status"], results["asleep"]["errorCode"]) == ("OFFLINE", "deviceOffline")
    assert (results["broken"]["status"], results["broken"]["errorCode"]) == ("ERROR", "deviceTurnedOff")
    assert results["front-door"]["status"] == "PENDING"
    [(_, body)] = maker.calls
    [lock_command] = [c for c in json.loads(body)["commands"] if c["deviceId"] == "front-door"]
    assert lock_command["expectsResult"] is True
    assert "tok-webhook" not in body.decode()
    # The maker's cloud reports the lock locked, with the command's id: Google gets the follow-up.
    cloud().complete(lock_command["commandId"], "alice", "front-door", {"isLocked": True})
    pipeline.settle(1)
    [report] = pipeline.validated()
    assert follow_up(report, "front-door", "LockUnlock")["status"] == "SUCCESS"
    assert pipeline.device("front-door")["state"]["isLocked"] is True


# Matter


def test_matter_fields_reach_sync_and_a_device_without_its_room_is_left_out(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
) -> None:
    from tests.integration.cli_runner import run_cli

    matter = {"matterUniqueId": "00112233aabbccddeeff", "matterOriginalVendorId": "0xfff1",
              "matterOriginalProductId": "0x1234"}  # fmt: skip
    pipeline.link("alice", {**lamp("in-the-office"), **matter, "roomHint": "Office"})
    # Written straight to Firestore without a room (devices add refuses it, below).
    roomless = {k: v for k, v in lamp("roomless").items() if k != "id"}
    pipeline.db.document("users/alice/devices/roomless").set({**roomless, **matter})
    status, answer = google("alice").post(sync_request())
    assert status == 200
    oracle().assert_response("sync", answer)
    synced = {device["id"]: device for device in answer["payload"]["devices"]}
    assert set(synced) == {"in-the-office"}
    assert {key: synced["in-the-office"][key] for key in matter} == matter
    [record] = [r for r in caplog.records if r.getMessage() == "device left out of SYNC"]
    assert "roomHint: required" in getattr(record, "reason")  # noqa: B009
    definition = tmp_path / "roomless.json"
    definition.write_text(json.dumps({**lamp("roomless-2"), **matter}))
    refused = run_cli("devices", "add", "--user", "alice", "--file", str(definition))
    assert refused.code == 1
    assert "roomHint: required" in refused.stderr


# the client and the simulator


def test_the_client_publishes_state_the_pipeline_reports(pipeline: Pipeline) -> None:  # noqa: F811
    pipeline.link("alice", lamp("lamp-1"))
    message_id = cloud().publish_state("alice", "lamp-1", {"on": True, "brightness": 55})
    assert message_id
    pipeline.settle(1)
    [body] = pipeline.validated()
    assert body["payload"]["devices"]["states"]["lamp-1"] == {"on": True, "brightness": 55, "online": True}
    with pytest.raises(devicecloud.InvalidStateMessage):
        cloud().publish_state("alice", "lamp-1", {"on": True}, error_code="lockFailure")


def test_the_simulator_carries_out_pubsub_and_webhook_devices_commands(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    device_cloud: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools.devicecloud import Simulator, serve_webhook

    simulator = Simulator(cloud(), delay_s=0.2)
    server = serve_webhook(simulator, SECRET)
    monkeypatch.setenv("WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/webhook")
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    future = cloud().subscribe_commands(simulator.on_command, subscription=device_cloud)
    try:
        pipeline.link("alice", {**lock(), "backend": "pubsub"}, {**lock("back-door"), "backend": "webhook"},
                      {**lamp("lamp-1"), "backend": "webhook"})  # fmt: skip
        request = execute_request(
            [
                (["front-door"], [execution("LockUnlock", {"lock": True, "followUpToken": "tok-pubsub"})]),
                (["back-door"], [execution("LockUnlock", {"lock": True, "followUpToken": "tok-webhook"})]),
                (["lamp-1"], [execution("OnOff", {"on": True})]),
            ]
        )
        results = results_by_device(google("alice").post(request)[1])
        assert results["front-door"]["status"] == results["back-door"]["status"] == "PENDING"
        assert results["lamp-1"]["status"] == "SUCCESS"
        assert pipeline.device("lamp-1")["state"]["on"] is True
        pipeline.settle(2, timeout_s=30)
        bodies = pipeline.validated()
        follow_ups = {
            device: response["LockUnlock"]["followUpResponse"]
            for body in bodies
            for device, response in body["payload"]["devices"].get("notifications", {}).items()
        }
        assert follow_ups["front-door"] == {"status": "SUCCESS", "isLocked": True, "followUpToken": "tok-pubsub"}
        assert follow_ups["back-door"] == {"status": "SUCCESS", "isLocked": True, "followUpToken": "tok-webhook"}
        assert pipeline.device("front-door")["state"]["isLocked"] is True
        # A lock that jams: the simulator reports it as a lock does.
        simulator.jam_rate = 1.0
        params = {"lock": False, "followUpToken": "t3"}
        unlock = execute_request([(["front-door"], [execution("LockUnlock", params, challenge={"ack": True})])])
        unlocked = results_by_device(google("alice").post(unlock)[1])["front-door"]
        assert unlocked["status"] == "PENDING", unlocked
        pipeline.settle(3, timeout_s=30)
        jammed = pipeline.validated()[-1]
        assert follow_up(jammed, "front-door", "LockUnlock")["errorCode"] == "deviceJammingDetected"
        assert pipeline.device("front-door")["state"]["isJammed"] is True
    finally:
        future.cancel()
        simulator.stop()
        server.shutdown()
