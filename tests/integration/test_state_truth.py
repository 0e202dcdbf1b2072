"""What QUERY and HomeGraph say is what the device last said, and nothing a device cloud sends vanishes.

End to end on the emulators, through the same served report_state, fulfillment and stand-in as
tests/integration/test_report_state.py (whose fixtures this module uses): pending commands store nothing until
the device reports, a jammed lock's natural message gives its FAILURE follow-up, refusals reach the rejection
topic, and only JSON values get in.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import PROJECT
from tests.integration.conftest import Google
from tests.integration.test_report_state import (  # noqa: F401 - fixtures
    COMMANDS,
    DEVICE_CLOUD,
    Pipeline,
    now_ms,
    pipeline,
    served,
)
from tests.unit.reporting_helpers import lamp, lock, message_json
from tools.google import execute_request, execution, query_request, sync_request
from tools.pubsub_local import create_subscription, create_topic, delete

pytestmark = pytest.mark.emulator

REJECTED = f"device-state-rejected-{uuid.uuid4().hex[:8]}"
Rejected = tuple[bytes, dict[str, str]]  # a rejection's data and attributes


@pytest.fixture(scope="module")
def rejected_topic(served: Any) -> Iterator[str]:  # noqa: F811 - the fixture imported above
    create_topic(PROJECT, REJECTED)
    create_subscription(PROJECT, REJECTED, REJECTED)
    yield REJECTED
    delete(PROJECT, REJECTED, [REJECTED])


@pytest.fixture
def rejections(rejected_topic: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[Rejected]]:
    """Pulls what reached the rejection topic: (data, attributes) per message."""
    from tools.pubsub_local import subscriber

    monkeypatch.setenv("REJECTED_TOPIC", rejected_topic)
    path = f"projects/{PROJECT}/subscriptions/{rejected_topic}"
    # Nothing of an earlier test is left to mistake for this one's.
    drain(path)

    def pull(expected: int, timeout_s: float = 10) -> list[Rejected]:
        """Until `expected` came; with `expected` 0, everything that comes within `timeout_s` (at least one pull)."""
        got: list[Rejected] = []
        deadline = time.time() + timeout_s
        while True:
            answer = subscriber().pull(subscription=path, max_messages=10, timeout=2)
            if answer.received_messages:
                subscriber().acknowledge(subscription=path, ack_ids=[m.ack_id for m in answer.received_messages])
            got += [(m.message.data, dict(m.message.attributes)) for m in answer.received_messages]
            if (expected and len(got) >= expected) or time.time() >= deadline:
                return got

    return pull


def drain(path: str) -> None:
    from tools.pubsub_local import subscriber

    while True:
        answer = subscriber().pull(subscription=path, max_messages=100, timeout=1)
        if not answer.received_messages:
            return
        subscriber().acknowledge(subscription=path, ack_ids=[m.ack_id for m in answer.received_messages])


def pull_command() -> dict[str, Any]:
    from tools.pubsub_local import subscriber

    path = f"projects/{PROJECT}/subscriptions/{DEVICE_CLOUD}"
    deadline = time.time() + 10
    while time.time() < deadline:
        answer = subscriber().pull(subscription=path, max_messages=10, timeout=2)
        if answer.received_messages:
            subscriber().acknowledge(subscription=path, ack_ids=[m.ack_id for m in answer.received_messages])
            command: dict[str, Any] = json.loads(answer.received_messages[0].message.data)
            return command
    raise AssertionError(f"no command on {COMMANDS}")


def lock_request(lock_it: bool, token: str) -> dict[str, Any]:
    return execute_request([(["front-door"], [execution("LockUnlock", {"lock": lock_it, "followUpToken": token})])])


# Pending means pending


def test_a_pending_lock_keeps_its_state_until_the_device_reports(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
) -> None:
    pipeline.link("alice", {**lock(), "backend": "pubsub"})
    status, answer = google("alice").post(lock_request(True, "tok-pending"))
    assert status == 200
    [result] = answer["payload"]["commands"]
    assert result["status"] == "PENDING"
    assert result["states"]["isLocked"] is False  # what the lock is now, not what it was asked to become
    command = pull_command()
    assert pipeline.device("front-door")["state"]["isLocked"] is False
    query = google("alice").post(query_request(["front-door"]))[1]
    assert query["payload"]["devices"]["front-door"]["isLocked"] is False
    assert pipeline.reports() == []  # HomeGraph hears nothing of a state the device has not reached
    # The device cloud reports it locked.
    pipeline.publish(message_json("front-door", {"isLocked": True}, now_ms(), commandId=command["commandId"]))
    pipeline.settle(1)
    [body] = pipeline.validated()
    devices = body["payload"]["devices"]
    assert devices["states"]["front-door"]["isLocked"] is True
    assert devices["notifications"]["front-door"]["LockUnlock"]["followUpResponse"]["status"] == "SUCCESS"
    assert pipeline.device("front-door")["state"]["isLocked"] is True


def test_a_jammed_lock_failure_follows_up_from_its_natural_message(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    rejections: Callable[..., list[Rejected]],
) -> None:
    pipeline.link("alice", {**lock(), "backend": "pubsub"})
    assert google("alice").post(lock_request(True, "tok-jam"))[1]["payload"]["commands"][0]["status"] == "PENDING"
    command = pull_command()
    # What a lock naturally sends: it is jammed, and it says so; it says nothing of isLocked.
    pipeline.publish(
        message_json(
            "front-door",
            {"isJammed": True},
            now_ms(),
            commandId=command["commandId"],
            errorCode="deviceJammingDetected",
        )
    )
    pipeline.settle(1)
    [body] = pipeline.validated()
    devices = body["payload"]["devices"]
    assert devices["notifications"]["front-door"]["LockUnlock"]["followUpResponse"] == {
        "status": "FAILURE",
        "errorCode": "deviceJammingDetected",
        "followUpToken": "tok-jam",
    }
    assert devices["states"]["front-door"] == {"isJammed": True, "online": True}
    assert pipeline.device("front-door")["state"] == {"isJammed": True}
    assert rejections(0, timeout_s=1) == []  # applied in full: nothing refused


def test_a_failure_is_delivered_even_when_its_state_part_is_refused(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    rejections: Callable[..., list[Rejected]],
) -> None:
    pipeline.link("alice", {**lock(), "backend": "pubsub"})
    google("alice").post(lock_request(True, "tok-bad-state"))
    command = pull_command()
    message = message_json(
        "front-door", {"isLocked": "maybe"}, now_ms(), commandId=command["commandId"], errorCode="lockFailure"
    )
    message_id = pipeline.publish(message)
    pipeline.settle(1)
    [body] = pipeline.validated()
    follow_up = body["payload"]["devices"]["notifications"]["front-door"]["LockUnlock"]["followUpResponse"]
    assert follow_up["status"] == "FAILURE"
    assert follow_up["errorCode"] == "lockFailure"
    assert pipeline.device("front-door")["state"]["isLocked"] is False  # the refused state was not stored
    [(data, attributes)] = rejections(1)
    assert json.loads(data) == message
    assert attributes["messageId"] == message_id
    assert attributes["agentUserId"] == "alice"
    assert attributes["deviceId"] == "front-door"
    assert attributes["reason"].startswith("state not applied: ")
    assert "isLocked" in attributes["reason"]


# Refusals reach the device cloud


def test_refused_messages_reach_the_rejection_topic_with_their_reason(
    pipeline: Pipeline,  # noqa: F811
    rejections: Callable[..., list[Rejected]],
) -> None:
    pipeline.link("alice", lamp("lamp-1"))
    pipeline.link("bob", lamp("bobs-lamp"))
    others = message_json("bobs-lamp", {"on": True}, now_ms())  # alice's message naming bob's device
    unknown = message_json("no-such-lamp", {"on": True}, now_ms())
    undecodable = b"\x00not json at all"
    ids = {
        pipeline.publish(others): ("no device 'bobs-lamp' for this user", "alice", "bobs-lamp"),
        pipeline.publish(unknown): ("no device 'no-such-lamp' for this user", "alice", "no-such-lamp"),
        pipeline.publish(undecodable): ("not JSON", None, None),
    }
    pipeline.settle(3)
    got = rejections(3)
    assert len(got) == 3
    by_id = {attributes["messageId"]: (data, attributes) for data, attributes in got}
    assert set(by_id) == set(ids)
    for message_id, (reason, user, device) in ids.items():
        _, attributes = by_id[message_id]
        assert reason in attributes["reason"]
        assert attributes.get("agentUserId") == user
        assert attributes.get("deviceId") == device
    assert by_id[next(i for i, v in ids.items() if v[1] is None)][0] == undecodable
    assert pipeline.device("bobs-lamp", user="bob")["state"]["on"] is False  # bob's lamp untouched
    assert pipeline.reports("bob") == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"on": true, "brightness": 1e999}', "inf is not a JSON number"),
        (b'{"on": true, "brightness": NaN}', "NaN is not valid JSON"),
        (b'{"on": true, "brightness": 1180591620717411303424}', "outside signed 64 bits"),
    ],
)
def test_a_state_message_with_a_number_json_cannot_carry_is_refused(
    pipeline: Pipeline,  # noqa: F811
    rejections: Callable[..., list[Rejected]],
    raw: bytes,
    reason: str,
) -> None:
    pipeline.link("alice", lamp("lamp-1"))
    observed = json.dumps(message_json("lamp-1", {}, now_ms())["observedAt"])
    data = b'{"agentUserId": "alice", "deviceId": "lamp-1", "observedAt": ' + observed.encode() + b', "states": '
    data += raw + b"}"
    pipeline.publish(data)
    pipeline.settle(1)
    [(sent, attributes)] = rejections(1)
    assert sent == data
    assert reason in attributes["reason"]
    assert attributes["agentUserId"] == "alice"
    assert attributes["deviceId"] == "lamp-1"
    assert pipeline.device("lamp-1")["state"]["on"] is False
    assert pipeline.reports() == []


# Only JSON values get in


@pytest.mark.parametrize(
    "number",
    ["1e999", "-1e999", "NaN", "Infinity", str(2**70)],
)
def test_the_fulfillment_refuses_numbers_json_cannot_carry(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    number: str,
) -> None:
    pipeline.link("alice", lamp("lamp-1"))
    body = json.dumps(execute_request([(["lamp-1"], [execution("BrightnessAbsolute", {"brightness": 7})])]))
    raw = body.replace('"brightness": 7', f'"brightness": {number}').encode()
    status, answer = google("alice").post(None, raw=raw)
    # The body is not JSON as the protocol knows it, so not even its requestId is read: a plain 400.
    assert status == 400
    assert answer["error"] == "invalid_request"
    assert "JSON" in answer["error_description"] or "64 bits" in answer["error_description"]
    assert pipeline.device("lamp-1")["state"]["brightness"] != 7


def non_json_values(db: Any) -> dict[str, tuple[str, Any]]:
    """One device per kind of Firestore value that is not JSON: (field path, value)."""
    from google.cloud import firestore

    return {
        "stamped": ("customData.lastSeen", firestore.SERVER_TIMESTAMP),  # converted to RFC 3339: still synced
        "stamped-state": ("state.brightness", firestore.SERVER_TIMESTAMP),
        "bytes": ("customData.blob", b"\x00\x01"),
        "geopoint": ("customData.where", firestore.GeoPoint(48.1, 11.6)),
        "reference": ("customData.owner", db.collection("users").document("alice")),
        "infinity": ("state.brightness", float("inf")),
        "nan": ("state.brightness", float("nan")),
    }


def test_one_device_with_each_non_json_value_breaks_none_of_the_others(
    pipeline: Pipeline,  # noqa: F811
    google: Callable[[str], Google],
    caplog: pytest.LogCaptureFixture,
) -> None:
    values = non_json_values(pipeline.db)
    pipeline.link("alice", lamp("good"), *(lamp(device_id) for device_id in values))
    devices = pipeline.db.collection("users").document("alice").collection("devices")
    for device_id, (field_path, value) in values.items():
        devices.document(device_id).update({field_path: value})
    time.sleep(1)  # the trigger's events of those writes come and go
    caplog.clear()
    alice = google("alice")

    status, synced = alice.post(sync_request())
    assert status == 200
    names = {d["id"]: d for d in synced["payload"]["devices"]}
    assert set(names) == {"good", "stamped"}
    assert isinstance(names["stamped"]["customData"]["lastSeen"], str)
    assert names["stamped"]["customData"]["lastSeen"].endswith("Z")
    left_out = [r for r in caplog.records if r.getMessage() == "device left out of SYNC"]
    reasons = " ".join(getattr(r, "reason", "") for r in left_out)
    for device_id, (field_path, _) in values.items():
        if device_id != "stamped":
            assert field_path in reasons, (device_id, reasons)

    status, queried = alice.post(query_request(["good", *values]))
    assert status == 200
    answers = queried["payload"]["devices"]
    assert answers["good"]["status"] == "SUCCESS"
    assert answers["stamped"]["status"] == "SUCCESS"
    assert {answers[d]["status"] for d in values if d != "stamped"} == {"ERROR"}

    request = execute_request([(["good", *values], [execution("OnOff", {"on": True})])])
    status, executed = alice.post(request)
    assert status == 200
    statuses = {i: r["status"] for r in executed["payload"]["commands"] for i in r["ids"]}
    assert statuses["good"] == "SUCCESS"
    assert statuses["stamped"] == "SUCCESS"
    assert {statuses[d] for d in values if d != "stamped"} == {"ERROR"}

    pipeline.publish(message_json("good", {"brightness": 33}, now_ms() + 5000))
    pipeline.settle(1, timeout_s=40)
    assert pipeline.standin.states("alice")["good"]["brightness"] == 33


def test_the_cli_refuses_numbers_json_cannot_carry(tmp_path: Any, firestore_db: Any) -> None:
    from tests.integration.cli_runner import run_cli

    for text in ('{"on": 1e999}', '{"on": NaN}', f'{{"brightness": {2**70}}}'):
        done = run_cli("devices", "set-state", "--user", "alice", "--id", "x", "--state", text)
        assert done.code != 0
        assert "Traceback" not in done.stderr
        assert "JSON" in done.stderr or "64 bits" in done.stderr
    definition = tmp_path / "device.json"
    definition.write_text(json.dumps(lamp("x")).replace('"willReportState": true', '"willReportState": 1e999'))
    done = run_cli("devices", "add", "--user", "alice", "--file", str(definition))
    assert done.code != 0
    assert "inf is not a JSON number" in done.stderr
