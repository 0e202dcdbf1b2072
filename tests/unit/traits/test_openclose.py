"""OpenClose: absolute and relative moves, discrete-only devices, directions, switches, locks and follow-ups."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import CommandError
from functions.core.schema import errors as schema_errors
from functions.core.traits.base import CommandContext, Effect
from functions.core.traits.openclose import OpenClose
from tests.schema_oracle import oracle

TRAIT = OpenClose()
UP_DOWN = {"openDirection": ["UP", "DOWN"]}


def register(attributes: dict[str, Any], state: dict[str, Any] | None = None, lock: bool = False) -> Device:
    traits = ["action.devices.traits.OpenClose"] + (["action.devices.traits.LockUnlock"] if lock else [])
    document: dict[str, Any] = {
        "type": "action.devices.types.DOOR" if lock else "action.devices.types.BLINDS",
        "traits": traits,
        "name": {"name": "blinds"},
        "willReportState": True,
        "attributes": attributes,
    }
    if state is not None:
        document["state"] = state
    return parse_device("d1", new_device_document("d1", document))


def run(device: Device, command: str, params: dict[str, Any], token: str | None = None) -> Effect:
    ctx = CommandContext(
        device_id=device.id,
        command=f"action.devices.commands.{command}",
        params=params,
        attributes=device.attributes,
        state=device.state,
        now_ms=1_700_000_000_000,
        follow_up_token=token,
    )
    return TRAIT.execute(ctx)


def after(device: Device, command: str, params: dict[str, Any]) -> dict[str, Any]:
    """The states Google gets after the command, checked against Google's schema."""
    reported = device.with_state(run(device, command, params).state).query_states()
    assert_google_states(reported)
    return reported


def assert_google_states(states: dict[str, Any]) -> None:
    schema = oracle().trait("OpenClose").states
    assert schema is not None
    own = {k: v for k, v in states.items() if k in ("openPercent", "openState")}
    oracle().assert_valid(schema, own, "OpenClose states")


def code_of(device: Device, command: str, params: dict[str, Any]) -> str:
    with pytest.raises(CommandError) as raised:
        run(device, command, params)
    return raised.value.code


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("OpenClose")
    for example in oracle().examples(schemas.attributes):
        assert OpenClose.attribute_errors(example) == [], example
    for example in oracle().examples(schemas.states):
        attributes = UP_DOWN if "openState" in example else {}
        assert OpenClose.state_errors(attributes, example) == [], example
    followup = schemas.commands["action.devices.commands.OpenClose"].followup
    for example in oracle().examples(followup):
        assert schema_errors(OpenClose.follow_up_schema or {}, example) == [], example


def test_initial_state_is_closed_in_the_form_the_attributes_call_for() -> None:
    assert register({}).query_states() == {"openPercent": 0}
    assert register(UP_DOWN).query_states() == {
        "openState": [{"openPercent": 0, "openDirection": "UP"}, {"openPercent": 0, "openDirection": "DOWN"}]
    }
    assert_google_states(register(UP_DOWN).query_states())


def test_a_state_in_the_wrong_form_is_refused() -> None:
    assert OpenClose.state_errors(UP_DOWN, {"openPercent": 10})
    assert OpenClose.state_errors({}, {"openState": [{"openPercent": 10, "openDirection": "UP"}]})
    assert OpenClose.state_errors({}, {"openPercent": 10, "openState": []})
    assert OpenClose.state_errors({}, {"openPercent": 101})


def test_absolute_percent_is_set_and_checked_against_0_to_100() -> None:
    device = register({})
    assert after(device, "OpenClose", {"openPercent": 40}) == {"openPercent": 40}
    assert code_of(device, "OpenClose", {"openPercent": 101}) == "valueOutOfRange"
    assert code_of(device, "OpenClose", {"openPercent": -1}) == "valueOutOfRange"


@pytest.mark.parametrize(
    ("start", "delta", "expected"),
    [(50, 20, 70), (90, 30, 100), (10, -30, 0), (0, -10, 0), (100, 5, 100), (33, 0.5, 33.5)],
)
def test_relative_moves_clamp_to_0_to_100(start: float, delta: float, expected: float) -> None:
    device = register({}, {"openPercent": start})
    assert after(device, "OpenCloseRelative", {"openRelativePercent": delta}) == {"openPercent": expected}


def test_relative_beyond_google_bounds_is_a_protocol_error() -> None:
    assert code_of(register({}), "OpenCloseRelative", {"openRelativePercent": 150}) == "protocolError"


def test_discrete_only_devices_only_open_fully_or_close_fully() -> None:
    device = register({"discreteOnlyOpenClose": True})
    assert after(device, "OpenClose", {"openPercent": 100}) == {"openPercent": 100}
    assert code_of(device, "OpenClose", {"openPercent": 50}) == "discreteOnlyOpenClose"
    assert code_of(device, "OpenCloseRelative", {"openRelativePercent": 5}) == "discreteOnlyOpenClose"
    # A relative close from closed stays closed, which a discrete device can do.
    assert after(device, "OpenCloseRelative", {"openRelativePercent": -10}) == {"openPercent": 0}
    opened = register({"discreteOnlyOpenClose": True}, {"openPercent": 100})
    assert after(opened, "OpenCloseRelative", {"openRelativePercent": -100}) == {"openPercent": 0}


def test_a_named_direction_moves_only_that_direction() -> None:
    device = register(
        UP_DOWN,
        {"openState": [{"openPercent": 10, "openDirection": "UP"}, {"openPercent": 20, "openDirection": "DOWN"}]},
    )
    assert after(device, "OpenClose", {"openPercent": 50, "openDirection": "DOWN"}) == {
        "openState": [{"openPercent": 10, "openDirection": "UP"}, {"openPercent": 50, "openDirection": "DOWN"}]
    }
    assert after(device, "OpenCloseRelative", {"openRelativePercent": 95, "openDirection": "UP"}) == {
        "openState": [{"openPercent": 100, "openDirection": "UP"}, {"openPercent": 20, "openDirection": "DOWN"}]
    }


def test_no_direction_moves_every_direction() -> None:
    device = register(
        UP_DOWN,
        {"openState": [{"openPercent": 10, "openDirection": "UP"}, {"openPercent": 20, "openDirection": "DOWN"}]},
    )
    assert after(device, "OpenClose", {"openPercent": 0}) == {
        "openState": [{"openPercent": 0, "openDirection": "UP"}, {"openPercent": 0, "openDirection": "DOWN"}]
    }
    assert after(device, "OpenCloseRelative", {"openRelativePercent": -15}) == {
        "openState": [{"openPercent": 0, "openDirection": "UP"}, {"openPercent": 5, "openDirection": "DOWN"}]
    }


def test_a_direction_the_device_does_not_list_is_not_supported() -> None:
    assert code_of(register(UP_DOWN), "OpenClose", {"openPercent": 50, "openDirection": "LEFT"}) == "notSupported"
    assert code_of(register({}), "OpenClose", {"openPercent": 50, "openDirection": "UP"}) == "notSupported"
    assert code_of(register({}), "OpenClose", {"openPercent": 50, "openDirection": "SIDEWAYS"}) == "protocolError"


def test_query_only_devices_refuse_commands() -> None:
    device = register({"queryOnlyOpenClose": True})
    assert device.query_states() == {"openPercent": 0}
    assert code_of(device, "OpenClose", {"openPercent": 100}) == "functionNotSupported"
    assert code_of(device, "OpenCloseRelative", {"openRelativePercent": 10}) == "functionNotSupported"


def test_command_only_devices_have_no_state_and_apply_relative_moves_themselves() -> None:
    device = register({"commandOnlyOpenClose": True})
    assert device.query_states() == {}
    assert device.with_state(run(device, "OpenClose", {"openPercent": 30}).state).query_states() == {}
    relative = run(device, "OpenCloseRelative", {"openRelativePercent": 10})
    assert (relative.state, relative.results, relative.pending) == ({}, {}, False)
    assert OpenClose.state_keys({"commandOnlyOpenClose": True}) == frozenset()


def test_both_switches_at_once_are_refused() -> None:
    assert OpenClose.attribute_errors({"commandOnlyOpenClose": True, "queryOnlyOpenClose": True})


def test_a_locked_door_does_not_open_but_closes() -> None:
    device = register({}, {"openPercent": 20, "isLocked": True}, lock=True)
    assert code_of(device, "OpenClose", {"openPercent": 100}) == "lockedState"
    assert code_of(device, "OpenCloseRelative", {"openRelativePercent": 10}) == "lockedState"
    assert after(device, "OpenClose", {"openPercent": 0})["openPercent"] == 0


def test_a_jammed_door_does_not_move() -> None:
    device = register({}, {"openPercent": 0, "isJammed": True}, lock=True)
    assert code_of(device, "OpenClose", {"openPercent": 100}) == "deviceJammingDetected"


def test_with_a_follow_up_token_the_command_is_pending_and_its_follow_up_is_valid() -> None:
    device = register(UP_DOWN)
    effect = run(device, "OpenClose", {"openPercent": 60, "openDirection": "UP", "followUpToken": "t1"}, token="t1")
    assert effect.pending is True
    reached = device.with_state(effect.state).state
    payload = OpenClose.follow_up_payload("t1", {"openPercent": 60, "openDirection": "UP"}, reached)
    assert isinstance(payload["OpenClose"]["followUpResponse"]["openPercent"], int)
    assert payload == {
        "OpenClose": {
            "priority": 0,
            "followUpResponse": {"status": "SUCCESS", "openPercent": 60, "followUpToken": "t1"},
        }
    }
    followup = oracle().trait("OpenClose").commands["action.devices.commands.OpenClose"].followup
    assert followup is not None
    oracle().assert_valid(followup, payload, "OpenClose follow-up")
    assert schema_errors(OpenClose.follow_up_schema or {}, payload) == []

    failure = OpenClose.follow_up_failure("t1", "lockedState")
    oracle().assert_valid(followup, failure, "OpenClose failed follow-up")
    assert schema_errors(OpenClose.follow_up_schema or {}, failure) == []


def test_without_a_follow_up_token_the_command_completes() -> None:
    effect = run(register({}), "OpenClose", {"openPercent": 100, "followUpToken": "t1"})
    assert effect.pending is False
    assert effect.state == {"openPercent": 100}
