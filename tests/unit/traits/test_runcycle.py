"""RunCycle: remaining times, cycle names, and the finished / failed notifications."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import new_device_document, parse_device
from functions.core.errors import InvalidDevice
from functions.core.schema import errors as schema_errors
from functions.core.traits.runcycle import RunCycle
from tests.schema_oracle import oracle


def register(state: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        # A type that needs no other trait, so that the test does not depend on other trait modules.
        "type": "action.devices.types.WATERSOFTENER",
        "traits": ["action.devices.traits.RunCycle"],
        "name": {"name": "washer"},
        "willReportState": True,
    }
    if state is not None:
        document["state"] = state
    return new_device_document("w1", document)


def google_notifications() -> dict[str, Any]:
    schema = oracle().trait("RunCycle").notifications
    assert schema is not None
    return schema


def test_initial_state_is_idle_and_valid_for_google() -> None:
    document = register()
    assert document["state"] == {"currentRunCycle": [], "currentTotalRemainingTime": 0, "currentCycleRemainingTime": 0}
    device = parse_device("w1", document)
    oracle().assert_states(device.trait_names, device.query_states(), "initial RunCycle")


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("RunCycle")
    for example in oracle().examples(schemas.states):
        assert RunCycle.state_errors({}, example) == [], example
    for example in oracle().examples(schemas.notifications):
        assert schema_errors(RunCycle.notification_schema or {}, example) == [], example


def test_a_running_cycle_is_stored_and_reported() -> None:
    running = {
        "currentRunCycle": [{"currentCycle": "rinse", "nextCycle": "spin", "lang": "en"}],
        "currentTotalRemainingTime": 1200,
        "currentCycleRemainingTime": 300,
    }
    device = parse_device("w1", register(running))
    assert device.query_states() == running
    oracle().assert_states(device.trait_names, device.query_states(), "running RunCycle")


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"currentTotalRemainingTime": 100, "currentCycleRemainingTime": 300}, "exceeds currentTotalRemainingTime"),
        ({"currentTotalRemainingTime": -5}, r"\(RunCycle\)\.currentTotalRemainingTime"),
        ({"currentCycleRemainingTime": 1.5}, r"\(RunCycle\)\.currentCycleRemainingTime"),
        ({"currentRunCycle": [{"currentCycle": "rinse"}]}, r"\(RunCycle\)\.currentRunCycle\.0"),
        ({"currentRunCycle": [{"currentCycle": "", "lang": "en"}]}, r"\(RunCycle\)\.currentRunCycle\.0\.currentCycle"),
    ],
)
def test_impossible_states_are_refused(state: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidDevice, match=message):
        register(state)


def test_finished_and_failed_notifications_are_valid_for_google() -> None:
    finished = RunCycle.finished_notification()
    failed = RunCycle.failed_notification("deviceStuck")
    assert finished == {"RunCycle": {"priority": 0, "status": "SUCCESS", "currentCycleRemainingTime": 0}}
    assert failed == {"RunCycle": {"priority": 0, "status": "FAILURE", "errorCode": "deviceStuck"}}
    for payload in (finished, failed):
        oracle().assert_valid(google_notifications(), payload, "RunCycle notification")
        assert schema_errors(RunCycle.notification_schema or {}, payload) == []
    assert "deviceStuck" in oracle().error_codes()


@pytest.mark.parametrize(
    "outcome",
    [
        {"priority": 0, "status": "SUCCESS"},
        {"priority": 0, "status": "FAILURE"},
        {"priority": 0, "status": "FAILURE", "errorCode": "deviceStuck", "currentCycleRemainingTime": 0},
        {"priority": 0, "status": "SUCCESS", "currentCycleRemainingTime": 0, "errorCode": "deviceStuck"},
        {"priority": 0, "status": "DONE", "currentCycleRemainingTime": 0},
        {"status": "SUCCESS", "currentCycleRemainingTime": 0},
    ],
)
def test_notifications_google_refuses_we_refuse(outcome: dict[str, Any]) -> None:
    payload = {"RunCycle": outcome}
    assert oracle().problems(google_notifications(), payload)
    assert schema_errors(RunCycle.notification_schema or {}, payload)


def test_completion_notification_only_when_a_running_operation_ends() -> None:
    running = {"currentTotalRemainingTime": 30}
    done = {"currentTotalRemainingTime": 0}
    assert RunCycle.completion_notification(running, done) == RunCycle.finished_notification()
    assert RunCycle.completion_notification(done, done) is None
    assert RunCycle.completion_notification(running, {"currentTotalRemainingTime": 10}) is None
    assert RunCycle.completion_notification({}, done) is None
