"""The report_state entry point's handling of what Pub/Sub delivers, before any storage is touched."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from functions.core.state_messages import StateMessage
from functions.reporting import entry, wiring
from functions.reporting.model import ReportDeferred
from functions.reporting.rejections import Rejections


def event(message: dict[str, Any]) -> CloudEvent:
    attributes = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub", "id": "ce-1"}
    return CloudEvent(attributes, {"message": message, "subscription": "projects/p/subscriptions/s"})


class Recorder:
    def __init__(self, outcome: BaseException | None = None) -> None:
        self.handled: list[tuple[Any, str, int]] = []
        self.outcome = outcome
        self.refuse_with: str | None = None

    def handle(self, message: Any, message_id: str, published_ms: int, refused: Callable[[str], None]) -> str:
        self.handled.append((message, message_id, published_ms))
        if self.refuse_with is not None:
            refused(self.refuse_with)
        if self.outcome is not None:
            raise self.outcome
        return "reported"


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        self.messages.append((topic, data, dict(attributes or {})))
        return str(len(self.messages))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recording = Recorder()
    monkeypatch.setattr(wiring, "_reporter", recording)
    return recording


@pytest.fixture
def rejected(monkeypatch: pytest.MonkeyPatch) -> Published:
    published = Published()
    monkeypatch.setattr(wiring, "_rejections", Rejections(lambda: published, lambda: "rejected-topic"))
    return published


def data(body: Any) -> str:
    return base64.b64encode(json.dumps(body).encode()).decode()


def test_a_pubsub_message_is_handed_over_with_its_id_and_publish_time(recorder: Recorder, rejected: Published) -> None:
    body = {"agentUserId": "u1", "deviceId": "lamp-1", "states": {"on": True}, "observedAt": "2026-11-21T05:00:00Z"}
    published = "2026-11-21T05:00:01.250Z"
    entry.report_state(event({"data": data(body), "messageId": "m-17", "publishTime": published}))
    [(message, message_id, published_ms)] = recorder.handled
    assert isinstance(message, StateMessage)
    assert message.states == {"on": True}
    assert message_id == "m-17"
    assert published_ms % 1000 == 250


@pytest.mark.parametrize(
    ("message", "reason", "original"),
    [
        ({"data": "%%% not base64", "messageId": "m"}, "base64", b"%%% not base64"),
        ({"data": data([1, 2]), "messageId": "m"}, "JSON object", b"[1, 2]"),
        ({"messageId": "m"}, "not JSON", b""),
        ({"data": base64.b64encode(b'{"states": {"x": 1e999}}').decode(), "messageId": "m"}, "inf", None),
        ({"data": base64.b64encode(b'{"states": {"x": NaN}}').decode(), "messageId": "m"}, "NaN", None),
        ({"data": data({"states": {"x": 2**70}}), "messageId": "m"}, "outside signed 64 bits", None),
    ],
)
def test_undecodable_messages_are_acknowledged_and_go_to_the_rejection_topic(
    recorder: Recorder,
    rejected: Published,
    caplog: pytest.LogCaptureFixture,
    message: dict[str, Any],
    reason: str,
    original: bytes | None,
) -> None:
    caplog.set_level(logging.WARNING)
    entry.report_state(event(message))  # returns: the message is acknowledged
    assert recorder.handled == []
    [record] = [r for r in caplog.records if r.getMessage().startswith("state message refused")]
    assert reason in getattr(record, "reason")  # noqa: B009
    [(topic, sent, attributes)] = rejected.messages
    assert topic == "rejected-topic"
    expected = original if original is not None else base64.b64decode(message["data"])
    assert sent == expected
    assert reason in attributes["reason"]
    assert attributes["messageId"] == "m"


def test_a_refusal_names_the_user_and_device_it_is_about(recorder: Recorder, rejected: Published) -> None:
    body = {"agentUserId": "u1", "deviceId": "lamp-1", "states": {"on": "yes"}, "observedAt": "2026-11-21T05:00:00Z"}
    recorder.refuse_with = "state not applied: on: not a boolean"
    entry.report_state(event({"data": data(body), "messageId": "m-9"}))
    [(_, sent, attributes)] = rejected.messages
    assert json.loads(sent) == body
    assert attributes == {
        "reason": "state not applied: on: not a boolean",
        "messageId": "m-9",
        "agentUserId": "u1",
        "deviceId": "lamp-1",
    }


def test_a_long_reason_is_cut_to_what_pubsub_takes(recorder: Recorder, rejected: Published) -> None:
    body = {"agentUserId": "u1", "deviceId": "lamp-1", "states": {}, "observedAt": "2026-11-21T05:00:00Z"}
    recorder.refuse_with = "é" * 2000
    entry.report_state(event({"data": data(body), "messageId": "m-10"}))
    [(_, _, attributes)] = rejected.messages
    assert len(attributes["reason"].encode()) <= 1024
    assert attributes["reason"].endswith("…")


def test_a_rejection_that_cannot_be_published_fails_the_invocation(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Down:
        def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
            raise RuntimeError("Pub/Sub is down")

    monkeypatch.setattr(wiring, "_rejections", Rejections(Down, lambda: "rejected-topic"))
    with pytest.raises(RuntimeError):
        entry.report_state(event({"data": "%%%", "messageId": "m"}))


def test_a_message_that_could_not_be_reported_fails_the_invocation(recorder: Recorder, rejected: Published) -> None:
    recorder.outcome = ReportDeferred("HomeGraph is unavailable")
    body = {"agentUserId": "u1", "deviceId": "lamp-1", "states": {}, "observedAt": "2026-11-21T05:00:00Z"}
    with pytest.raises(ReportDeferred):
        entry.report_state(event({"data": data(body), "messageId": "m-1"}))


def test_settings_leave_room_for_a_whole_call_in_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORT_WINDOW_MS", "250")
    monkeypatch.setenv("HOMEGRAPH_TIMEOUT_S", "2")
    monkeypatch.setenv("HOMEGRAPH_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("HOMEGRAPH_RETRY_BASE_S", "0.5")
    monkeypatch.setenv("HOMEGRAPH_RETRY_CAP_S", "8")
    settings = wiring.settings()
    assert settings.window_ms == 250
    # three attempts of 2 s with waits of 0.5 and 1 s between them, the window, and the margin
    assert settings.lease_ms == 250 + 7_500 + wiring.LEASE_MARGIN_MS


def test_the_package_names_its_public_api_and_loads_it_on_first_use() -> None:
    probe = (
        "import sys, json; import functions.reporting as reporting; "
        "loaded = sorted(m for m in sys.modules if m.startswith(('functions.reporting.', 'google.cloud.'))); "
        "from functions.reporting import ReportDeferred, forward_device_write; "
        "from functions.reporting.model import ReportDeferred as Deferred; "
        "assert ReportDeferred is Deferred and callable(forward_device_write); "
        "print(json.dumps([loaded, sorted(reporting.__all__)]))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
    loaded, public = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == []  # importing the package loads none of it (nor the Firestore SDK)
    assert public == ["FirestoreReportStore", "ReportDeferred", "forward_device_write"]


def test_forward_device_write_hands_the_write_to_the_instances_reporter(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.reporting import forward_device_write

    class Written:
        def device_written(self, *args: Any) -> str:
            self.args = args
            return "ignored"

    written = Written()
    monkeypatch.setattr(wiring, "_reporter", written)
    before, after = {"state": {"on": False}}, {"state": {"on": True}}
    assert forward_device_write("u1", "lamp-1", before, after, "evt-1", 1234) == "ignored"
    assert written.args == ("u1", "lamp-1", before, after, "evt-1", 1234)
