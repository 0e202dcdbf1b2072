"""LockUnlock: locking, jams, already-in-state answers and follow-ups."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import CommandError, InvalidDevice
from functions.core.schema import errors as schema_errors
from functions.core.traits.base import CommandContext, Effect
from functions.core.traits.lockunlock import LockUnlock
from tests.schema_oracle import oracle

TRAIT = LockUnlock()
COMMAND = "action.devices.commands.LockUnlock"


def register(state: dict[str, Any] | None = None) -> Device:
    document: dict[str, Any] = {
        "type": "action.devices.types.LOCK",
        "traits": ["action.devices.traits.LockUnlock"],
        "name": {"name": "front door"},
        "willReportState": True,
    }
    if state is not None:
        document["state"] = state
    return parse_device("l1", new_device_document("l1", document))


def run(device: Device, params: dict[str, Any], token: str | None = None) -> Effect:
    ctx = CommandContext("l1", COMMAND, params, device.attributes, device.state, 1_700_000_000_000, token)
    return TRAIT.execute(ctx)


def code_of(device: Device, params: dict[str, Any]) -> str:
    with pytest.raises(CommandError) as raised:
        run(device, params)
    return raised.value.code


def google_followup() -> dict[str, Any]:
    schema = oracle().trait("LockUnlock").commands[COMMAND].followup
    assert schema is not None
    return schema


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("LockUnlock")
    for example in oracle().examples(schemas.states):
        assert LockUnlock.state_errors({}, example) == [], example
    for example in oracle().examples(google_followup()):
        assert schema_errors(LockUnlock.follow_up_schema or {}, example) == [], example


def test_a_new_lock_has_no_guessed_state() -> None:
    assert register().query_states() == {}


def test_a_jammed_lock_cannot_report_being_locked() -> None:
    assert LockUnlock.state_errors({}, {"isJammed": True, "isLocked": True})
    assert oracle().problems(oracle().trait("LockUnlock").states or {}, {"isJammed": True, "isLocked": True})
    with pytest.raises(InvalidDevice, match="jammed"):
        register({"isJammed": True, "isLocked": False})


@pytest.mark.parametrize("lock", [True, False])
def test_locking_and_unlocking_set_is_locked(lock: bool) -> None:
    device = register({"isLocked": not lock})
    effect = run(device, {"lock": lock})
    states = device.with_state(effect.state).query_states()
    assert states == {"isLocked": lock, "isJammed": False}
    oracle().assert_states(device.trait_names, states, "LockUnlock")


def test_a_lock_in_unknown_state_accepts_either_command() -> None:
    assert run(register(), {"lock": True}).state["isLocked"] is True
    assert run(register(), {"lock": False}).state["isLocked"] is False


def test_already_locked_and_already_unlocked() -> None:
    assert code_of(register({"isLocked": True}), {"lock": True}) == "alreadyLocked"
    assert code_of(register({"isLocked": False}), {"lock": False}) == "alreadyUnlocked"


def test_a_jammed_lock_refuses_both_commands() -> None:
    assert code_of(register({"isJammed": True}), {"lock": True}) == "deviceJammingDetected"
    assert code_of(register({"isJammed": True}), {"lock": False}) == "deviceJammingDetected"


def test_a_missing_lock_param_is_a_protocol_error() -> None:
    assert code_of(register(), {"followUpToken": "t"}) == "protocolError"


def test_with_a_token_locking_is_pending_and_the_follow_up_reports_the_result() -> None:
    device = register({"isLocked": False})
    effect = run(device, {"lock": True, "followUpToken": "t9"}, token="t9")
    assert effect.pending is True
    reached = device.with_state(effect.state).state
    payload = LockUnlock.follow_up_payload("t9", {"lock": True}, reached)
    assert payload["LockUnlock"]["followUpResponse"] == {"status": "SUCCESS", "isLocked": True, "followUpToken": "t9"}
    oracle().assert_valid(google_followup(), payload, "LockUnlock follow-up")
    assert schema_errors(LockUnlock.follow_up_schema or {}, payload) == []


@pytest.mark.parametrize(
    ("lock", "state", "code"),
    [
        (True, {"isLocked": False}, "lockFailure"),
        (False, {"isLocked": True}, "unlockFailure"),
        (True, {"isJammed": True}, "deviceJammingDetected"),
    ],
)
def test_a_follow_up_for_a_lock_that_did_not_get_there_is_a_failure(
    lock: bool, state: dict[str, Any], code: str
) -> None:
    payload = LockUnlock.follow_up_payload("t9", {"lock": lock}, state)
    assert payload["LockUnlock"]["followUpResponse"] == {"status": "FAILURE", "errorCode": code, "followUpToken": "t9"}
    oracle().assert_valid(google_followup(), payload, "LockUnlock failed follow-up")
    assert code in oracle().error_codes()


def test_without_a_token_locking_completes() -> None:
    assert run(register(), {"lock": True, "followUpToken": "t9"}).pending is False
