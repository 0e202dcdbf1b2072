"""Report State end to end: a push subscription on the Pub/Sub emulator delivers to `report_state` under
functions-framework, devices live in the Firestore emulator, and the HomeGraph stand-in plays Google.

Every call the stand-in receives is validated against Google's schemas (trait states, notifications, follow-up
responses) by tests/schema_oracle.py. The emulator's push delivers two messages at a time and redelivers a failed
one about a second later, which is what the redelivery and coalescing cases rely on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import PROJECT
from tests.integration.conftest import REPO_ROOT, Google
from tests.schema_oracle import oracle
from tests.unit.reporting_helpers import doorbell, lamp, lock, message_json, router, smoke_detector, washer
from tools import emulators
from tools.google import disconnect_request, execute_request, execution, sync_request
from tools.homegraph_standin import StandIn
from tools.pubsub_local import ServedFunction, create_subscription, create_topic, delete

pytestmark = pytest.mark.emulator

RUN = uuid.uuid4().hex[:8]
TOPIC = f"device-state-e2e-{RUN}"
PUSH = f"report-state-push-{RUN}"
COMMANDS = f"device-commands-e2e-{RUN}"
REJECTED_DEFAULT = f"device-state-rejected-e2e-{RUN}"
DEVICE_CLOUD = f"device-cloud-{RUN}"
WINDOW_MS = 300
SYNC_DELAY_S = 0.6
HOMEGRAPH_TIMEOUT_S = 2.0  # a healthy call on a loaded machine stays inside it; the timeout faults go past it


@pytest.fixture(scope="module")
def served(firestore_emulator: emulators.Emulator, pubsub_emulator: emulators.Emulator) -> Iterator[ServedFunction]:
    import functions_framework

    app = functions_framework.create_app(target="report_state", source=str(REPO_ROOT / "main.py"))
    function = ServedFunction(app)
    create_topic(PROJECT, TOPIC)
    create_subscription(PROJECT, TOPIC, PUSH, push_endpoint=f"{function.url}/projects/{PROJECT}/topics/{TOPIC}")
    create_topic(PROJECT, COMMANDS)
    create_subscription(PROJECT, COMMANDS, DEVICE_CLOUD)
    create_topic(PROJECT, REJECTED_DEFAULT)  # refusals go somewhere (tests/integration/test_state_truth.py reads them)
    yield function
    delete(PROJECT, TOPIC, [PUSH])
    delete(PROJECT, COMMANDS, [DEVICE_CLOUD])
    delete(PROJECT, REJECTED_DEFAULT, [])
    function.stop()


class Pipeline:
    def __init__(self, function: ServedFunction, standin: StandIn, db: Any) -> None:
        self.function = function
        self.standin = standin
        self.db = db
        self.ok_before = function.deliveries.count(200)
        self.answers_before = len(function.deliveries.answers)
        self.traits: dict[str, list[str]] = {}

    def link(self, user: str, *devices: dict[str, Any]) -> None:
        """The user's devices in Firestore, the user linked (Firestore and Google), Google knowing the devices."""
        from functions.core.device import parse_device
        from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
        from tools.cli import validated_devices

        documents = validated_devices([{k: v for k, v in d.items() if k != "backend"} for d in devices])
        for (device_id, stored), device in zip(documents, devices, strict=True):
            if "backend" in device:
                stored["backend"] = device["backend"]
            self.traits[device_id] = list(device["traits"])
        FirestoreDeviceRegistry(self.db).add(user, documents)
        FirestoreFulfillmentStore(self.db).mark_linked(user, int(time.time() * 1000) - 3_600_000)
        self.standin.link(user, sync=False, devices=[parse_device(i, d).sync_view() for i, d in documents])

    def publish(self, body: Any, attributes: dict[str, str] | None = None) -> str:
        from tools.pubsub_local import publisher

        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        future = publisher().publish(f"projects/{PROJECT}/topics/{TOPIC}", data, **(attributes or {}))
        return str(future.result(timeout=30))

    def settle(self, delivered: int, timeout_s: float = 30, quiet_s: float = 0.5) -> None:
        """Waits until `delivered` more messages were acknowledged and all is quiet."""
        assert self.function.deliveries.wait(self.ok_before + delivered, timeout_s, quiet_s), self.statuses()

    def statuses(self) -> list[int]:
        return [status for status, _, _ in self.function.deliveries.answers[self.answers_before :]]

    def reports(self, user: str = "alice", status: int | None = 200) -> list[dict[str, Any]]:
        calls = self.standin.calls("reportStateAndNotification", user)
        return [c for c in calls if status is None or c["status"] == status]

    def validated(self, user: str = "alice") -> list[dict[str, Any]]:
        """The successful reports, each checked against Google's schemas."""
        bodies = [c["request"] for c in self.reports(user)]
        for body in bodies:
            oracle().assert_report(body, self.traits)
        return bodies

    def device(self, device_id: str, user: str = "alice") -> dict[str, Any]:
        snap = self.db.collection("users").document(user).collection("devices").document(device_id).get()
        return snap.to_dict() or {}

    def user(self, user: str = "alice") -> dict[str, Any]:
        return self.db.collection("users").document(user).get().to_dict() or {}


@pytest.fixture
def pipeline(
    served: ServedFunction, firestore_db: Any, homegraph_standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    from functions.platform.homegraph import HomeGraphClient, RetryPolicy
    from functions.reporting import wiring
    from functions.reporting.pipeline import Reporter
    from functions.reporting.store import FirestoreReportStore

    for name, value in {
        "STATE_TOPIC": TOPIC,
        "COMMANDS_TOPIC": COMMANDS,
        "REJECTED_TOPIC": REJECTED_DEFAULT,
        "REPORT_WINDOW_MS": str(WINDOW_MS),
        "REPORT_WAIT_BUDGET_S": "20",
        "INITIAL_REPORT_DELAY_S": str(SYNC_DELAY_S),
        "VIRTUAL_DEVICE_DELAY_MS": "0",
        "HOMEGRAPH_TIMEOUT_S": str(HOMEGRAPH_TIMEOUT_S),
        "HOMEGRAPH_RETRY_ATTEMPTS": "2",
        "HOMEGRAPH_RETRY_BASE_S": "0.05",
        "HOMEGRAPH_RETRY_CAP_S": "0.1",
    }.items():
        monkeypatch.setenv(name, value)
    client = HomeGraphClient(
        endpoint=homegraph_standin.url, timeout_s=HOMEGRAPH_TIMEOUT_S, retry=RetryPolicy(2, 0.05, 0.1)
    )
    settings = dataclasses.replace(wiring.settings(), retry_after_s=0.3)
    monkeypatch.setattr(wiring, "_reporter", Reporter(FirestoreReportStore(firestore_db), lambda: client, settings))
    flow = Pipeline(served, homegraph_standin, firestore_db)
    yield flow
    served.deliveries.wait(0, timeout_s=10, quiet_s=0.2)  # nothing of this test still in flight


def reporter_settings(**changes: Any) -> None:
    from functions.reporting import wiring

    reporter = wiring.reporter()
    reporter.settings = dataclasses.replace(reporter.settings, **changes)


def now_ms() -> int:
    return int(time.time() * 1000)


# State reporting


def test_a_state_message_reaches_homegraph_as_one_schema_valid_call(
    pipeline: Pipeline, google: Callable[[str], Google]
) -> None:
    pipeline.link("alice", lamp("lamp-1"), lock())
    pipeline.publish(message_json("lamp-1", {"on": True, "brightness": 60}, now_ms()))
    pipeline.settle(1)
    [body] = pipeline.validated()
    assert body["payload"]["devices"] == {"states": {"lamp-1": {"on": True, "brightness": 60, "online": True}}}
    assert pipeline.device("lamp-1")["state"] == {"on": True, "brightness": 60}
    assert pipeline.standin.states("alice")["lamp-1"] == {"on": True, "brightness": 60, "online": True}
    # QUERY answers from Firestore, which the message updated first.
    status, answer = google("alice").post(
        {"requestId": "q", "inputs": [{"intent": "action.devices.QUERY", "payload": {"devices": [{"id": "lamp-1"}]}}]}
    )
    assert status == 200
    assert answer["payload"]["devices"]["lamp-1"]["brightness"] == 60


def test_unchanged_state_costs_no_call_and_a_redelivery_reports_once(pipeline: Pipeline) -> None:
    pipeline.link("alice", lamp("lamp-1"))
    # The first delivery fails (HomeGraph answers 503 to both of the client's attempts); Pub/Sub redelivers.
    pipeline.standin.add_fault(method="reportStateAndNotification", status=503, times=2)
    pipeline.publish(message_json("lamp-1", {"on": True}, now_ms()))
    pipeline.settle(1, quiet_s=0.3)
    assert pipeline.statuses() == [500, 200]
    for n in range(3):  # the same state again: a device repeating itself
        pipeline.publish(message_json("lamp-1", {"on": True, "brightness": 10}, now_ms() + n))
    pipeline.settle(4)
    [body] = pipeline.validated()
    assert body["payload"]["devices"]["states"]["lamp-1"]["on"] is True
    assert [c["status"] for c in pipeline.reports(status=None)] == [503, 503, 200]


def test_a_message_older_than_the_last_applied_is_not_applied(pipeline: Pipeline) -> None:
    pipeline.link("alice", lamp("lamp-1"))
    observed = now_ms()
    pipeline.publish(message_json("lamp-1", {"brightness": 70}, observed))
    pipeline.settle(1)
    pipeline.publish(message_json("lamp-1", {"brightness": 20}, observed - 2000))
    pipeline.settle(2)
    assert pipeline.device("lamp-1")["state"]["brightness"] == 70
    assert [b["payload"]["devices"]["states"]["lamp-1"]["brightness"] for b in pipeline.validated()] == [70]


def test_messages_of_one_user_close_together_are_coalesced(pipeline: Pipeline) -> None:
    reporter_settings(window_ms=3000)  # "close together" even when a loaded machine spaces the two deliveries
    pipeline.link("alice", lamp("lamp-1"), lamp("lamp-2"))
    pipeline.publish(message_json("lamp-1", {"on": True}, now_ms()))
    pipeline.publish(message_json("lamp-2", {"on": True}, now_ms()))
    pipeline.settle(2)
    [body] = pipeline.validated()
    assert set(body["payload"]["devices"]["states"]) == {"lamp-1", "lamp-2"}


def test_users_who_disconnected_get_nothing(pipeline: Pipeline, google: Callable[[str], Google]) -> None:
    pipeline.link("alice", lamp("lamp-1"))
    assert google("alice").post(disconnect_request())[0] == 200
    pipeline.publish(message_json("lamp-1", {"on": True}, now_ms()))
    pipeline.settle(1)
    assert pipeline.reports(status=None) == []
    assert pipeline.device("lamp-1")["state"]["on"] is True  # the state is still the truth for the next link


def test_invalid_and_too_old_messages_are_acknowledged_logged_and_rejected(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.link("alice", lamp("lamp-1"))
    caplog.set_level(logging.INFO)
    pipeline.publish(b"{not json")
    pipeline.publish(message_json("no-such-device", {"on": True}, now_ms()))
    pipeline.publish(message_json("lamp-1", {"brightness": 101}, now_ms()))
    pipeline.settle(3)
    reporter_settings(max_message_age_s=0)
    pipeline.publish(message_json("lamp-1", {"on": True}, now_ms()))
    pipeline.settle(4)
    assert pipeline.statuses() == [200, 200, 200, 200]  # acknowledged: never redelivered
    assert pipeline.reports(status=None) == []
    refused = ("state message refused", "state message not applied in full")
    reasons = [getattr(r, "reason", "") for r in caplog.records if r.getMessage().startswith(refused)]
    assert len(reasons) == 4  # each also went to the rejection topic (tests/integration/test_state_truth.py)
    assert any("not JSON" in r for r in reasons)
    assert any("no-such-device" in r for r in reasons)
    assert any("brightness" in r for r in reasons)
    assert any("older than the maximum message age" in r for r in reasons)
    assert pipeline.device("lamp-1")["state"] == {"on": False, "brightness": 10}


# Notifications


def test_notifications_are_announced_once_with_the_trait_payload(pipeline: Pipeline) -> None:
    pipeline.link("alice", doorbell("doorbell"), doorbell("quiet-bell", notifications=False), smoke_detector())
    detection = {"ObjectDetection": {"priority": 0, "detectionTimestamp": now_ms(), "objects": {"named": ["Alice"]}}}
    pipeline.publish(message_json("doorbell", {}, now_ms(), notifications=detection, eventId="press-1"))
    pipeline.settle(1)
    pipeline.publish(message_json("doorbell", {}, now_ms(), notifications=detection, eventId="press-1"))  # again
    pipeline.publish(message_json("quiet-bell", {}, now_ms(), notifications=detection, eventId="press-2"))
    smoke = {"currentSensorStateData": [{"name": "SmokeLevel", "currentSensorState": "smoke detected"}]}
    alarm = {"SensorState": {"priority": 0, "name": "SmokeLevel", "currentSensorState": "smoke detected"}}
    pipeline.publish(message_json("smoke", smoke, now_ms(), notifications=alarm, eventId="smoke-1"))
    pipeline.settle(4)
    bodies = pipeline.validated()
    announced = [(b["eventId"], next(iter(b["payload"]["devices"]["notifications"]))) for b in bodies]
    assert sorted(announced) == [("press-1", "doorbell"), ("smoke-1", "smoke")]
    [smoke_call] = [b for b in bodies if b["eventId"] == "smoke-1"]
    assert (
        smoke_call["payload"]["devices"]["states"]["smoke"]["currentSensorStateData"] == smoke["currentSensorStateData"]
    )
    assert not any(n["duplicate"] for n in pipeline.standin.notifications("alice"))


def test_a_finished_run_is_announced_with_its_state(pipeline: Pipeline) -> None:
    pipeline.link("alice", washer())
    done = {"currentTotalRemainingTime": 0, "currentCycleRemainingTime": 0, "currentRunCycle": [], "isRunning": False}
    pipeline.publish(message_json("washer", done, now_ms()))
    pipeline.settle(1)
    [body] = pipeline.validated()
    assert body["payload"]["devices"]["notifications"]["washer"]["RunCycle"]["status"] == "SUCCESS"
    assert body["payload"]["devices"]["states"]["washer"]["currentTotalRemainingTime"] == 0


# Follow-ups


def pending_command(pipeline: Pipeline, command_id: str) -> dict[str, Any]:
    snap = pipeline.db.collection("users").document("alice").collection("followUps").document(command_id).get()
    return snap.to_dict() or {}


def test_a_virtual_lock_answers_pending_then_follows_up_with_its_state(
    pipeline: Pipeline, google: Callable[[str], Google], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIRTUAL_DEVICE_DELAY_MS", "400")
    pipeline.link("alice", lock())
    request = execute_request([(["front-door"], [execution("LockUnlock", {"lock": True, "followUpToken": "tok-1"})])])
    started = time.time()
    status, answer = google("alice").post(request)
    assert status == 200
    oracle().assert_response("execute", answer)
    [result] = answer["payload"]["commands"]
    assert result["status"] == "PENDING"
    pipeline.settle(1)
    [body] = pipeline.validated()
    [call] = pipeline.reports()
    assert call["at"] - started >= 0.4  # the virtual device took its configured time
    devices = body["payload"]["devices"]
    assert devices["notifications"]["front-door"]["LockUnlock"]["followUpResponse"] == {
        "status": "SUCCESS",
        "isLocked": True,
        "followUpToken": "tok-1",
    }
    assert devices["states"]["front-door"]["isLocked"] is True
    assert body["eventId"]


def test_a_pubsub_device_gets_the_command_and_its_failure_follows_up(
    pipeline: Pipeline, google: Callable[[str], Google]
) -> None:
    from tools.pubsub_local import subscriber

    pipeline.link("alice", {**lock(), "backend": "pubsub"})
    request = execute_request([(["front-door"], [execution("LockUnlock", {"lock": True, "followUpToken": "tok-2"})])])
    assert google("alice").post(request)[1]["payload"]["commands"][0]["status"] == "PENDING"
    pulled = subscriber().pull(subscription=f"projects/{PROJECT}/subscriptions/{DEVICE_CLOUD}", max_messages=10)
    [received] = pulled.received_messages
    command = json.loads(received.message.data)
    assert command["command"] == "action.devices.commands.LockUnlock"
    assert command["params"] == {"lock": True}
    assert "tok-2" not in received.message.data.decode()
    # The maker's device cloud found the lock jammed.
    jammed = {"isJammed": True, "isLocked": None}
    pipeline.publish(
        message_json("front-door", jammed, now_ms(), commandId=command["commandId"], errorCode="deviceJammingDetected")
    )
    pipeline.settle(1)
    [body] = pipeline.validated()
    assert body["payload"]["devices"]["notifications"]["front-door"]["LockUnlock"]["followUpResponse"] == {
        "status": "FAILURE",
        "errorCode": "deviceJammingDetected",
        "followUpToken": "tok-2",
    }
    assert body["payload"]["devices"]["states"]["front-door"] == {"isJammed": True, "online": True}
    assert pending_command(pipeline, command["commandId"])["completedBy"]


def test_an_expired_follow_up_token_sends_the_state_but_no_follow_up(
    pipeline: Pipeline, google: Callable[[str], Google], caplog: pytest.LogCaptureFixture
) -> None:
    from tools.pubsub_local import subscriber

    caplog.set_level(logging.INFO)
    pipeline.link("alice", {**lock(), "backend": "pubsub"})
    request = execute_request([(["front-door"], [execution("LockUnlock", {"lock": True, "followUpToken": "tok-3"})])])
    google("alice").post(request)
    pulled = subscriber().pull(subscription=f"projects/{PROJECT}/subscriptions/{DEVICE_CLOUD}", max_messages=10)
    command_id = json.loads(pulled.received_messages[0].message.data)["commandId"]
    # Five minutes pass before the device cloud answers.
    followups = pipeline.db.collection("users").document("alice").collection("followUps")
    followups.document(command_id).update({"expiresAtMs": now_ms() - 1})
    # The lock did lock, late: the state goes, the follow-up not.
    pipeline.publish(message_json("front-door", {"isLocked": True}, now_ms(), commandId=command_id))
    pipeline.settle(1)
    [body] = pipeline.validated()
    assert "notifications" not in body["payload"]["devices"]
    assert body["payload"]["devices"]["states"]["front-door"]["isLocked"] is True
    assert any("token expired" in r.getMessage() for r in caplog.records)


def test_a_speed_test_follows_up_with_the_measured_speeds(pipeline: Pipeline, google: Callable[[str], Google]) -> None:
    pipeline.link("alice", router())
    params = {"testDownloadSpeed": True, "testUploadSpeed": True, "followUpToken": "tok-4"}
    request = execute_request([(["router"], [execution("TestNetworkSpeed", params)])])
    assert google("alice").post(request)[1]["payload"]["commands"][0]["status"] == "PENDING"
    pipeline.settle(1)
    [body] = pipeline.validated()
    response = body["payload"]["devices"]["notifications"]["router"]["NetworkControl"]["followUpResponse"]
    assert response["status"] == "SUCCESS"
    assert response["networkDownloadSpeedMbps"] > 0
    assert response["networkUploadSpeedMbps"] > 0
    assert "guestNetworkPassword" not in json.dumps(body)


# HomeGraph errors


def test_404_unlinks_the_user_until_the_next_sync_which_brings_a_full_report(
    pipeline: Pipeline, google: Callable[[str], Google]
) -> None:
    pipeline.link("alice", lamp("lamp-1"), lamp("lamp-2"))
    pipeline.standin.unlink("alice")  # Google forgot the user
    pipeline.publish(message_json("lamp-1", {"on": True}, now_ms()))
    pipeline.settle(1)
    assert [c["status"] for c in pipeline.reports(status=None)] == [404]
    assert pipeline.user()["linked"] is False
    assert pipeline.user()["unlinkedBy"] == "homegraph-404"
    pipeline.publish(message_json("lamp-2", {"on": True}, now_ms()))
    pipeline.settle(2)
    assert len(pipeline.reports(status=None)) == 1  # nothing more for an unlinked user
    # The user links again: Google runs SYNC; INITIAL_REPORT_DELAY_S later every device is reported in full.
    from functions.core.device import parse_device

    pipeline.standin.link(
        "alice", sync=False, devices=[parse_device(d, pipeline.device(d)).sync_view() for d in ("lamp-1", "lamp-2")]
    )
    started = time.time()
    status, _answer = google("alice").post(sync_request())
    assert status == 200
    pipeline.settle(3, quiet_s=0.3)
    assert pipeline.user()["linked"] is True
    [body] = pipeline.validated()
    [call] = pipeline.reports()
    assert call["at"] - started >= SYNC_DELAY_S
    assert body["payload"]["devices"]["states"] == {
        "lamp-1": {"on": True, "brightness": 10, "online": True},
        "lamp-2": {"on": True, "brightness": 10, "online": True},
    }


def test_400_is_logged_and_dropped(pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    pipeline.link("alice", lamp("lamp-1"))
    pipeline.standin.add_fault(method="reportStateAndNotification", status=400, times=1, message="bad state")
    pipeline.publish(message_json("lamp-1", {"on": True}, now_ms()))
    pipeline.settle(1)
    assert pipeline.statuses() == [200]  # acknowledged: a 400 is never retried
    assert [c["status"] for c in pipeline.reports(status=None)] == [400]
    [record] = [r for r in caplog.records if r.getMessage().startswith("HomeGraph refused")]
    assert getattr(record, "reason") == "bad state"  # noqa: B009
    assert getattr(record, "status") == 400  # noqa: B009


@pytest.mark.parametrize(
    "fault", [{"status": 429}, {"status": 500}, {"delay_s": HOMEGRAPH_TIMEOUT_S + 1.5}], ids=["429", "500", "timeout"]
)
def test_transient_errors_are_retried_then_redelivered(pipeline: Pipeline, fault: dict[str, Any]) -> None:
    pipeline.link("alice", lamp("lamp-1"))
    pipeline.standin.add_fault(method="reportStateAndNotification", times=3, **fault)
    pipeline.publish(message_json("lamp-1", {"brightness": 33}, now_ms()))
    pipeline.settle(1, quiet_s=0.5)
    assert pipeline.statuses()[-1] == 200
    assert 500 in pipeline.statuses()  # the invocation failed first, and the message came back
    # A call that timed out may still have landed (HomeGraph answers late): each carries the same state. The call
    # that went through needed a retry, so the device is reported once more, in full, a client timeout later, in
    # case a late landing of an older state comes after it.
    bodies = pipeline.validated()
    assert {body["payload"]["devices"]["states"]["lamp-1"]["brightness"] for body in bodies} == {33}
    answered = [c for c in pipeline.reports(status=None) if "fault" not in c]
    assert len(answered) == 2
    assert answered[-1]["request"]["payload"]["devices"]["states"] == {
        "lamp-1": {"on": False, "brightness": 33, "online": True}
    }
    assert answered[-1]["at"] - answered[0]["at"] >= HOMEGRAPH_TIMEOUT_S


# State written straight to Firestore (the device-document trigger's path)


def test_a_device_cloud_write_to_firestore_is_reported(pipeline: Pipeline) -> None:
    from functions.reporting import forward_device_write

    pipeline.link("alice", lamp("lamp-1"))
    ref = pipeline.db.collection("users").document("alice").collection("devices").document("lamp-1")
    before = ref.get().to_dict()
    ref.update({"state.on": True})
    after = ref.get().to_dict()
    assert forward_device_write("alice", "lamp-1", before, after, "evt-1", now_ms()) == "reported"
    assert forward_device_write("alice", "lamp-1", before, after, "evt-1", now_ms()) == "reported"  # redelivered
    [body] = pipeline.validated()
    assert body["payload"]["devices"]["states"]["lamp-1"] == {"on": True, "brightness": 10, "online": True}


@pytest.fixture(scope="module")
def device_trigger(firestore_emulator: emulators.Emulator, local_eventarc: Any) -> Iterator[ServedFunction]:
    """sync_on_device_change (which hands state changes to Report State) on the default database's devices."""
    import functions_framework

    from tools.eventarc import Retry

    trigger_id = f"report-state-devices-{RUN}"
    function = ServedFunction(
        functions_framework.create_app(target="sync_on_device_change", source=str(REPO_ROOT / "main.py"))
    )
    local_eventarc.register_firestore_trigger(
        firestore_emulator.url,
        PROJECT,
        trigger_id,
        "users/{agentUserId}/devices/{deviceId}",
        [function.url],
        retry=Retry(attempts=4, min_backoff_s=0.3, max_backoff_s=1.0),
    )
    yield function
    local_eventarc.route(trigger_id, [])
    function.stop()


def test_execute_and_device_cloud_writes_reach_homegraph_through_the_trigger(
    pipeline: Pipeline, device_trigger: ServedFunction, local_eventarc: Any, google: Callable[[str], Google]
) -> None:
    pipeline.link("alice", lamp("lamp-1"), lock())
    assert local_eventarc.wait_idle(timeout_s=30)
    # A device cloud writes a state straight into Firestore; Google's EXECUTE locks the door.
    lamp_ref = pipeline.db.collection("users").document("alice").collection("devices").document("lamp-1")
    lamp_ref.update({"state.on": True})
    request = execute_request([(["front-door"], [execution("LockUnlock", {"lock": True})])])
    status, answer = google("alice").post(request)
    assert status == 200
    assert answer["payload"]["commands"][0]["status"] == "SUCCESS"
    # The emulator delivers trigger events one at a time, sometimes behind the previous tests' deletions.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        held = pipeline.standin.states("alice")
        if held.get("lamp-1", {}).get("on") is True and held.get("front-door", {}).get("isLocked") is True:
            break
        time.sleep(0.1)
    assert local_eventarc.wait_idle(timeout_s=30, quiet_s=0.5)
    bodies = pipeline.validated()
    reported: dict[str, dict[str, Any]] = {}
    for body in bodies:
        for device_id, states in body["payload"]["devices"]["states"].items():
            reported.setdefault(device_id, {}).update(states)
    assert reported["lamp-1"]["on"] is True
    assert reported["front-door"]["isLocked"] is True
    calls = len(bodies)
    # A state message writes the document too: its trigger event is recognised, and nothing is reported twice.
    pipeline.publish(message_json("lamp-1", {"brightness": 90}, now_ms()))
    pipeline.settle(1)
    assert local_eventarc.wait_idle(timeout_s=30, quiet_s=0.5)
    bodies = pipeline.validated()
    assert len(bodies) == calls + 1
    assert bodies[-1]["payload"]["devices"]["states"]["lamp-1"]["brightness"] == 90
