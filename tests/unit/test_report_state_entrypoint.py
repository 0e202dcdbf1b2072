"""The report_state entry point's handling of what Pub/Sub delivers, before any storage is touched."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from functions.core.state_messages import StateMessage
from functions.reporting import entry
from functions.reporting.pipeline import ReportDeferred


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
    monkeypatch.setattr(entry, "_reporter", recording)
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
    settings = entry.settings()
    assert settings.window_ms == 250
    # three attempts of 2 s with waits of 0.5 and 1 s between them, the window, and the margin
    assert settings.lease_ms == 250 + 7_500 + entry.LEASE_MARGIN_MS
