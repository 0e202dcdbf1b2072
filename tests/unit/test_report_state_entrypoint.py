"""The report_state entry point's handling of what Pub/Sub delivers, before any storage is touched."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from functions.core.state_messages import StateMessage
from functions.reporting import entry, wiring
from functions.reporting.model import ReportDeferred


def event(message: dict[str, Any]) -> CloudEvent:
    attributes = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub", "id": "ce-1"}
    return CloudEvent(attributes, {"message": message, "subscription": "projects/p/subscriptions/s"})


class Recorder:
    def __init__(self, outcome: BaseException | None = None) -> None:
        self.handled: list[tuple[Any, str, int]] = []
        self.outcome = outcome

    def handle(self, message: Any, message_id: str, published_ms: int) -> str:
        self.handled.append((message, message_id, published_ms))
        if self.outcome is not None:
            raise self.outcome
        return "reported"


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recording = Recorder()
    monkeypatch.setattr(wiring, "_reporter", recording)
    return recording


def data(body: Any) -> str:
    return base64.b64encode(json.dumps(body).encode()).decode()


def test_a_pubsub_message_is_handed_over_with_its_id_and_publish_time(recorder: Recorder) -> None:
    body = {"agentUserId": "u1", "deviceId": "lamp-1", "states": {"on": True}, "observedAt": "2026-11-21T05:00:00Z"}
    published = "2026-11-21T05:00:01.250Z"
    entry.report_state(event({"data": data(body), "messageId": "m-17", "publishTime": published}))
    [(message, message_id, published_ms)] = recorder.handled
    assert isinstance(message, StateMessage)
    assert message.states == {"on": True}
    assert message_id == "m-17"
    assert published_ms % 1000 == 250


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"data": "%%% not base64", "messageId": "m"}, "base64"),
        ({"data": data([1, 2]), "messageId": "m"}, "JSON object"),
        ({"messageId": "m"}, "not JSON"),
    ],
)
def test_undecodable_messages_are_acknowledged_and_logged(
    recorder: Recorder, caplog: pytest.LogCaptureFixture, message: dict[str, Any], reason: str
) -> None:
    caplog.set_level(logging.WARNING)
    entry.report_state(event(message))  # returns: the message is acknowledged
    assert recorder.handled == []
    [record] = [r for r in caplog.records if r.getMessage().startswith("invalid state message")]
    assert reason in getattr(record, "reason")  # noqa: B009


def test_a_message_that_could_not_be_reported_fails_the_invocation(recorder: Recorder) -> None:
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
