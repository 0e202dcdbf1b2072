"""StartStop: starting and stopping, zones, and pausing."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import CommandError
from functions.core.traits.base import CommandContext
from functions.core.traits.startstop import StartStop
from tests.schema_oracle import oracle

TRAIT = StartStop()
ZONED = {"pausable": True, "availableZones": ["kitchen", "living room", "office"]}


def register(attributes: dict[str, Any], state: dict[str, Any] | None = None) -> Device:
    document: dict[str, Any] = {
        "type": "action.devices.types.VACUUM",
        "traits": ["action.devices.traits.StartStop"],
        "name": {"name": "vacuum"},
        "willReportState": True,
        "attributes": attributes,
    }
    if state is not None:
        document["state"] = state
    return parse_device("v1", new_device_document("v1", document))


def after(device: Device, command: str, params: dict[str, Any]) -> dict[str, Any]:
    ctx = CommandContext("v1", f"action.devices.commands.{command}", params, device.attributes, device.state, 0)
    states = device.with_state(TRAIT.execute(ctx).state).query_states()
    oracle().assert_states(device.trait_names, states, f"{command} {params}")
    return states


def code_of(device: Device, command: str, params: dict[str, Any]) -> str:
    ctx = CommandContext("v1", f"action.devices.commands.{command}", params, device.attributes, device.state, 0)
    with pytest.raises(CommandError) as raised:
        TRAIT.execute(ctx)
    return raised.value.code


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("StartStop")
    for example in oracle().examples(schemas.attributes):
        assert StartStop.attribute_errors(example) == [], example
    for example in oracle().examples(schemas.states):
        assert StartStop.state_errors({}, example) == [], example


def test_initial_state_is_stopped() -> None:
    assert register({}).query_states() == {"isRunning": False}
    assert register(ZONED).query_states() == {"isRunning": False, "isPaused": False, "activeZones": []}


def test_start_and_stop() -> None:
    device = register({})
    assert after(device, "StartStop", {"start": True}) == {"isRunning": True}
    assert after(register({}, {"isRunning": True}), "StartStop", {"start": False}) == {"isRunning": False}


def test_starting_in_zones_records_them_spelled_as_the_device_lists_them() -> None:
    device = register(ZONED)
    assert after(device, "StartStop", {"start": True, "zone": "Kitchen"})["activeZones"] == ["kitchen"]
    states = after(device, "StartStop", {"start": True, "multipleZones": ["office", "dining room", "OFFICE"]})
    # availableZones is not exclusive: a zone the device does not list is passed on as the user said it.
    assert states == {"isRunning": True, "isPaused": False, "activeZones": ["office", "dining room"]}


def test_starting_without_zones_and_stopping_leave_no_zone_active() -> None:
    running = register(ZONED, {"isRunning": True, "isPaused": False, "activeZones": ["kitchen"]})
    assert after(running, "StartStop", {"start": False})["activeZones"] == []
    assert after(running, "StartStop", {"start": True})["activeZones"] == []


def test_zones_on_a_device_without_zones_are_not_supported() -> None:
    assert code_of(register({}), "StartStop", {"start": True, "zone": "kitchen"}) == "notSupported"
    assert code_of(register({}), "StartStop", {"start": True, "multipleZones": ["a", "b"]}) == "notSupported"


def test_pausing_a_device_that_cannot_pause_is_refused() -> None:
    device = register({"pausable": False}, {"isRunning": True})
    assert code_of(device, "PauseUnpause", {"pause": True}) == "functionNotSupported"


def test_pause_and_resume() -> None:
    running = register(ZONED, {"isRunning": True, "isPaused": False})
    paused = after(running, "PauseUnpause", {"pause": True})
    assert (paused["isRunning"], paused["isPaused"]) == (False, True)
    resumed = after(register(ZONED, {"isRunning": False, "isPaused": True}), "PauseUnpause", {"pause": False})
    assert (resumed["isRunning"], resumed["isPaused"]) == (True, False)


def test_pausing_a_stopped_device_and_resuming_an_unpaused_one_change_nothing() -> None:
    stopped = register(ZONED)
    states = after(stopped, "PauseUnpause", {"pause": True})
    assert (states["isRunning"], states["isPaused"]) == (False, False)
    running = register(ZONED, {"isRunning": True, "isPaused": False})
    states = after(running, "PauseUnpause", {"pause": False})
    assert (states["isRunning"], states["isPaused"]) == (True, False)


def test_starting_a_paused_device_unpauses_it() -> None:
    paused = register(ZONED, {"isRunning": False, "isPaused": True})
    states = after(paused, "StartStop", {"start": True})
    assert (states["isRunning"], states["isPaused"]) == (True, False)


def test_running_and_paused_at_once_is_refused() -> None:
    assert StartStop.state_errors({}, {"isRunning": True, "isPaused": True})
