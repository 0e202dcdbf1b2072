"""`python -m functions vitals` on a recorded log of known outcomes: the log is written by the functions' own
logging code (functions/fulfillment/facts.py, functions/platform/homegraph.py, functions/reporting/flusher.py)
through the production JSON formatter, then read back by the command, so the contract between them is exercised
whole. Every rule of Google's (SUCCESS and PENDING succeed, exempted codes and non-blocking exceptions succeed,
everything else fails, p90 against 1000 ms, HomeGraph calls 2xx) and the state accuracy estimate are checked,
with a mix that is GOOD at 99.6 % and one that is POOR at 99.4 %."""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from functions.core import tokens, vitals
from functions.core.device import Device
from functions.fulfillment import facts
from functions.fulfillment.facts import AnswerFacts, DeviceFact
from functions.platform import homegraph
from functions.platform.logs import JsonLineFormatter
from functions.reporting import flusher
from functions.reporting.planning import Call, DeviceView, QueueEntry
from tools import cli
from tools import vitals as vitals_tool

USER = "user-1"
LIGHT, SWITCH, OUTLET, LOCK = (f"action.devices.types.{name}" for name in ("LIGHT", "SWITCH", "OUTLET", "LOCK"))
# An access token naming USER, as account linking issues them (`kind.base64(agentUserId).secret`).
TOKEN = f"{tokens.ACCESS}.{base64.urlsafe_b64encode(USER.encode()).decode().rstrip('=')}.secret"
WRITERS = ("functions.fulfillment.facts", "functions.platform.homegraph", "functions.reporting.flusher")


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Path]:
    """A log file the functions' loggers write to, as the local stack's function logs are written."""
    path = tmp_path / "recorded.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonLineFormatter())
    loggers = [logging.getLogger(name) for name in WRITERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield path
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
    handler.close()


def answer(
    intent: str, device_type: str, status: str, code: str | None = None, latency_ms: int = 40, **fact: Any
) -> None:
    """One fulfillment answer about one device, through the fulfillment's own logging, `latency_ms` after the
    request arrived, exactly (a stall of the machine must not move a 1000 ms sample past the gate)."""
    device = DeviceFact(fact.pop("device_id", "d1"), device_type, ("OnOff",), status, code, **fact)
    answered = AnswerFacts(f"action.devices.{intent}", "r1", (device,))
    with mock.patch.object(facts, "_latency_ms", return_value=latency_ms):
        facts.log_answer(answered, None, TOKEN, 200, time.monotonic() - latency_ms / 1000)


def calls(succeeded: int, failed: int) -> None:
    for _ in range(succeeded):
        homegraph._log_call("reportStateAndNotification", 200, time.monotonic(), 1)
    for index in range(failed):
        homegraph._log_call("reportStateAndNotification", 503 if index % 2 else None, time.monotonic(), 2)


def vitals_of(path: Path, *options: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = cli.main(["vitals", str(path), "--json", *options])
    return code, json.loads(capsys.readouterr().out)


def test_google_rules_at_99_6_percent_are_good_and_at_99_4_percent_poor(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(1000):  # LIGHT QUERY: 4 failures in 1000
        answer("QUERY", LIGHT, "ERROR" if index < 4 else "SUCCESS", "deviceOffline" if index < 4 else None)
    for index in range(1000):  # SWITCH EXECUTE: 6 failures in 1000
        answer("EXECUTE", SWITCH, "OFFLINE" if index < 6 else "PENDING", "deviceOffline" if index < 6 else None)
    calls(996, 4)
    code, figures = vitals_of(recorded, capsys=capsys)
    light, switch = figures["deviceTypes"][LIGHT], figures["deviceTypes"][SWITCH]
    assert (light["QUERY"]["successRate"], light["QUERY"]["successGate"]) == (0.996, "GOOD")
    assert light["QUERY"]["failures"] == {"deviceOffline": 4}
    assert (switch["EXECUTE"]["successRate"], switch["EXECUTE"]["successGate"]) == (0.994, "POOR")
    assert switch["QUERY"]["successGate"] == "no data", "no result is no failure"
    assert (figures["homegraph"]["successRate"], figures["homegraph"]["gate"]) == (0.996, "GOOD")
    assert figures["overall"]["QUERY"]["results"] == 1000
    assert figures["poor"] == [
        "SWITCH EXECUTE: 99.40 % succeeded (< 99.5 %)",
        "all EXECUTE: 99.40 % succeeded (< 99.5 %)",
    ]
    assert code == 1, "a POOR gate fails the command"


def test_homegraph_calls_below_the_gate_make_the_project_poor(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answer("QUERY", LIGHT, "SUCCESS")
    calls(994, 6)  # retries count: each request is one Google sees
    code, figures = vitals_of(recorded, capsys=capsys)
    assert (figures["homegraph"]["successRate"], figures["homegraph"]["gate"]) == (0.994, "POOR")
    assert figures["homegraph"]["failures"] == {
        "reportStateAndNotification 503": 3,
        "reportStateAndNotification no answer": 3,
    }
    assert code == 1


def test_exempted_codes_and_non_blocking_exceptions_count_as_successes(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for code in sorted(vitals.EXEMPT_ERROR_CODES):
        answer("EXECUTE", OUTLET, "ERROR", code)
    answer("EXECUTE", OUTLET, "EXCEPTIONS", "lowBattery")  # non-blocking
    answer("EXECUTE", LOCK, "ERROR", "challengeNeeded")  # our reading: the answered challenge is graded
    answer("EXECUTE", LOCK, "SUCCESS")
    answer("EXECUTE", LOCK, "EXCEPTIONS", "deviceJammingDetected")  # blocking: a failure
    answer("EXECUTE", LOCK, "ERROR", "transientError")
    code, figures = vitals_of(recorded, capsys=capsys)
    outlet, lock = figures["deviceTypes"][OUTLET]["EXECUTE"], figures["deviceTypes"][LOCK]["EXECUTE"]
    assert (outlet["results"], outlet["succeeded"]) == (len(vitals.EXEMPT_ERROR_CODES) + 1, outlet["results"])
    assert (lock["results"], lock["succeeded"]) == (4, 2)
    assert lock["failures"] == {"deviceJammingDetected": 1, "transientError": 1}
    lines = [json.loads(line) for line in recorded.read_text().splitlines()]
    exempt = {line["errorCode"]: line["exempt"] for line in lines if line["message"] == vitals.DEVICE_RESULT_LINE}
    assert exempt["inOffMode"]
    assert exempt["lowBattery"]
    assert not exempt["deviceJammingDetected"]
    assert code == 1


def test_p90_latency_against_1000_ms_per_intent_and_device_type(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(100):  # LIGHT QUERY: the 90th sample of 100 is 1000 ms
        answer("QUERY", LIGHT, "SUCCESS", latency_ms=1000 if index >= 10 and index < 91 else 20)
    for index in range(100):  # LIGHT EXECUTE: 11 of 100 above 1000 ms
        answer("EXECUTE", LIGHT, "SUCCESS", latency_ms=1200 if index < 11 else 30)
    code, figures = vitals_of(recorded, capsys=capsys)
    light = figures["deviceTypes"][LIGHT]
    assert (light["QUERY"]["p90Ms"], light["QUERY"]["latencyGate"]) == (1000, "GOOD")
    assert (light["EXECUTE"]["p90Ms"], light["EXECUTE"]["latencyGate"]) == (1200, "POOR")
    assert code == 1


def report(device_id: str, states: dict[str, Any], at_ms: int, queued_ms: int) -> None:
    """A report HomeGraph accepted, through the flusher's own logging."""
    device = Device(device_id, {"type": LIGHT, "traits": ["action.devices.traits.OnOff"], "name": {"name": device_id}})
    call = Call("report-1", {device_id: states})
    entries = [QueueEntry("e1", device_id, queued_ms)]
    flusher._log_devices_reported(USER, call, {device_id: DeviceView(device, {})}, entries, {device_id: states}, at_ms)


def query_at(monkeypatch: pytest.MonkeyPatch, at_ms: int, device_id: str, states: dict[str, Any]) -> None:
    monkeypatch.setattr(facts, "_now_ms", lambda: at_ms)
    answered = {"online": True, "status": "SUCCESS", **states}
    device = Device(device_id, {"type": LIGHT, "traits": ["action.devices.traits.OnOff"], "name": {"name": "x"}})
    answer(
        "QUERY",
        LIGHT,
        "SUCCESS",
        device_id=device_id,
        states_hash=facts.query_fact(device_id, device, answered).states_hash,
    )


def test_state_accuracy_compares_query_answers_with_the_last_report(
    recorded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    on, off = {"online": True, "on": True}, {"online": True, "on": False}
    query_at(monkeypatch, 500, "lamp", {"online": False})  # nothing reported before, none matching after: not judged
    report("lamp", on, at_ms=1_000, queued_ms=900)
    query_at(monkeypatch, 2_000, "lamp", {"on": True, "online": True})  # as reported (key order is no matter)
    query_at(monkeypatch, 3_000, "lamp", off)  # changed, reported 1.5 s later: on its way, accurate
    report("lamp", off, at_ms=4_500, queued_ms=3_000)
    query_at(monkeypatch, 10_000, "lamp", on)  # changed, never reported: HomeGraph is wrong
    query_at(monkeypatch, 11_000, "other", on)  # a device never reported: not judged
    code, figures = vitals_of(recorded, capsys=capsys)
    accuracy = figures["deviceTypes"][LIGHT]["stateAccuracy"]
    assert (accuracy["compared"], accuracy["accurate"], accuracy["gate"]) == (3, 2, "POOR")
    freshness = figures["deviceTypes"][LIGHT]["freshness"]
    assert (freshness["reports"], freshness["p50Ms"], freshness["p95Ms"]) == (2, 100, 1500)
    # A report later than the grace period does not excuse the answer.
    code, figures = vitals_of(recorded, "--grace-s", "1", capsys=capsys)
    assert figures["deviceTypes"][LIGHT]["stateAccuracy"]["accurate"] == 1
    assert code == 1


def test_the_answer_line_hashes_the_user_and_lists_the_devices(recorded: Path) -> None:
    answer("QUERY", LIGHT, "SUCCESS", device_id="desk-lamp")
    answer("SYNC", LIGHT, "SUCCESS")
    lines = [json.loads(line) for line in recorded.read_text().splitlines()]
    answers = [line for line in lines if line["message"] == vitals.ANSWER_LINE]
    assert [line["intent"] for line in answers] == ["QUERY", "SYNC"]
    assert answers[0]["devices"] == [
        {"id": "desk-lamp", "type": LIGHT, "traits": ["OnOff"], "status": "SUCCESS", "errorCode": None}
    ]
    assert answers[0]["userHash"] == vitals.user_hash(USER)
    assert USER not in json.dumps(lines)
    results = [line for line in lines if line["message"] == vitals.DEVICE_RESULT_LINE]
    assert len(results) == 1, "SYNC is not graded: no device result lines"


def test_failed_answers_count_every_named_device_as_a_failure(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "requestId": "r9",
        "inputs": [{"intent": "action.devices.QUERY", "payload": {"devices": [{"id": "a"}, {"id": "b"}]}}],
    }
    facts.log_failed_answer(body, TOKEN, 503, time.monotonic())
    code, figures = vitals_of(recorded, capsys=capsys)
    unknown = figures["deviceTypes"][facts.UNKNOWN_TYPE]["QUERY"]
    assert (unknown["results"], unknown["succeeded"]) == (2, 0)
    assert code == 1


def test_good_everywhere_exits_0_and_reads_stdin_and_cloud_logging_exports(
    recorded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(10):
        answer("QUERY", LIGHT, "SUCCESS")
        answer("EXECUTE", LIGHT, "SUCCESS")
    calls(10, 0)
    monkeypatch.setattr("sys.stdin", io.StringIO("werkzeug: GET / 200\n" + recorded.read_text()))
    assert cli.main(["vitals", "-"]) == 0
    shown = capsys.readouterr().out
    assert "Every gate GOOD." in shown
    assert "LIGHT" in shown
    # `gcloud logging read --format=json`: entries holding the lines as jsonPayload, numbers as doubles.
    exported = [
        {"jsonPayload": {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in line.items()},
         "timestamp": "2026-12-01T10:00:00Z"}
        for line in map(json.loads, recorded.read_text().splitlines())
    ]  # fmt: skip
    export = recorded.with_name("export.json")
    export.write_text(json.dumps(exported))
    code, figures = vitals_of(export, capsys=capsys)
    assert code == 0
    assert figures["homegraph"]["successRate"] == 1.0
    assert figures["overall"]["EXECUTE"]["results"] == 10


def test_nothing_to_read_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("no json here\n")
    assert cli.main(["vitals", str(empty)]) == 1
    assert "no Home Vitals lines" in capsys.readouterr().err
    assert vitals_tool.since_ms("2h", 10_000_000) == 10_000_000 - 7_200_000
    with pytest.raises(vitals_tool.Refused):
        vitals_tool.since_ms("yesterday", 0)
