"""The states a report implies (docs/state-rules.md): a partial report merged into the stored state that used to
break Google's states schema is now valid for Google and keeps the newest information.

Each test merges the report as EXECUTE and the Report State pipeline do (`Device.with_state`), then checks the
result against our own rules (what refuses a message) and against Google's schema (`oracle()`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.device import Device, new_device_document, parse_device
from functions.reporting.planning import state_changes
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device as single_trait_device

JAMMED_LOCK_MESSAGE = {"isJammed": True}
UP_DOWN = {"openDirection": ["UP", "DOWN"]}
ONLY_UP = {"openDirection": ["UP"]}
RANGED_THERMOSTAT = {"availableThermostatModes": ["off", "heat", "cool", "heatcool"], "thermostatTemperatureUnit": "C"}
SETPOINT = "thermostatTemperatureSetpoint"
WHITE_RANGE = {"temperatureMinK": 2000, "temperatureMaxK": 9000}
SMOKE_AND_FILTER = {
    "sensorStatesSupported": [
        {
            "name": "SmokeLevel",
            "descriptiveCapabilities": {"availableStates": ["smoke detected", "no smoke detected"]},
            "numericCapabilities": {"rawValueUnit": "PARTS_PER_MILLION"},
        },
        {"name": "FilterCleanliness", "descriptiveCapabilities": {"availableStates": ["clean", "dirty"]}},
    ]
}


def lock(state: Mapping[str, Any]) -> Device:
    document = {
        "type": "action.devices.types.LOCK",
        "traits": ["action.devices.traits.LockUnlock"],
        "name": {"name": "front door"},
        "willReportState": True,
        "state": dict(state),
    }
    return parse_device("l1", new_device_document("l1", document))


def reported(device: Device, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The state after `changes`, accepted by our own rules; what Google gets of it is valid for Google."""
    after = device.with_state(changes)
    for trait in after.traits:
        assert trait.state_errors(after.attributes, after.state) == [], trait.name
    states = after.query_states()
    oracle().assert_states(after.trait_names, states, "merged states")
    return dict(after.state)


def google_refuses(trait: str, state: Mapping[str, Any]) -> bool:
    schema = oracle().trait(trait).states
    assert schema is not None
    return bool(oracle().problems(schema, dict(state)))


# LockUnlock (traits/lockunlock/lockunlock.states.schema.json: if isJammed is true, then no isLocked)


def test_a_jammed_lock_message_is_applied_not_refused() -> None:
    door = lock({"isLocked": False, "isJammed": False})
    assert google_refuses("LockUnlock", {**door.state, **JAMMED_LOCK_MESSAGE})  # the plain merge, as before
    assert reported(door, JAMMED_LOCK_MESSAGE) == {"isJammed": True}
    # The Report State pipeline accepts the message and names no problem.
    after, ignored, problems = state_changes(door, JAMMED_LOCK_MESSAGE, None)
    assert (after.state, ignored, problems) == ({"isJammed": True}, [], [])


def test_a_jam_reported_with_a_stale_is_locked_drops_it() -> None:
    door = lock({"isLocked": True, "isJammed": False})
    assert reported(door, {"isJammed": True, "isLocked": True}) == {"isJammed": True}


def test_a_jammed_lock_that_reports_its_locked_state_is_no_longer_jammed() -> None:
    door = lock({"isJammed": True})
    assert google_refuses("LockUnlock", {"isJammed": True, "isLocked": True})
    assert reported(door, {"isLocked": True}) == {"isJammed": False, "isLocked": True}


def test_a_lock_that_is_not_jammed_keeps_its_state() -> None:
    door = lock({"isLocked": True, "isJammed": False})
    assert reported(door, {"isJammed": False}) == {"isLocked": True, "isJammed": False}


# OpenClose (traits/openclose/openclose.states.schema.json: oneOf openPercent | openState)


def test_a_percent_on_a_one_direction_device_becomes_its_open_state() -> None:
    blinds = single_trait_device("OpenClose", ONLY_UP)
    assert blinds.state == {"openState": [{"openPercent": 0, "openDirection": "UP"}]}
    assert google_refuses("OpenClose", {**blinds.state, "openPercent": 40})
    assert reported(blinds, {"openPercent": 40}) == {"openState": [{"openPercent": 40, "openDirection": "UP"}]}


def test_a_one_entry_open_state_on_a_device_without_directions_becomes_its_percent() -> None:
    door = single_trait_device("OpenClose", {})
    news = {"openState": [{"openPercent": 70, "openDirection": "OUT"}]}
    assert google_refuses("OpenClose", {**door.state, **news})
    assert reported(door, news) == {"openPercent": 70}


def test_the_devices_own_form_replaces_a_stale_other_form() -> None:
    # As a device cloud may have written it before validation existed: both forms stored.
    stored = {"openPercent": 10, "openState": [{"openPercent": 10, "openDirection": "UP"}]}
    blinds = single_trait_device("OpenClose", UP_DOWN)
    blinds = Device(blinds.id, blinds.definition, stored)
    news = {"openState": [{"openPercent": 30, "openDirection": "UP"}, {"openPercent": 50, "openDirection": "DOWN"}]}
    assert reported(blinds, news) == news


def test_a_percent_for_several_directions_is_not_guessed_and_names_the_form_to_use() -> None:
    blinds = single_trait_device("OpenClose", UP_DOWN)
    after = blinds.with_state({"openPercent": 40})
    assert after.state == {"openPercent": 40}  # the stored openState is stale; the percent cannot be converted
    [problem] = after.traits[0].state_errors(after.attributes, after.state)
    assert "reports openState instead" in problem
    _, _, problems = state_changes(blinds, {"openPercent": 40}, None)
    assert problems == [problem]


def test_an_open_state_of_several_entries_on_a_device_without_directions_is_refused() -> None:
    door = single_trait_device("OpenClose", {})
    news = {"openState": [{"openPercent": 30, "openDirection": "UP"}, {"openPercent": 50, "openDirection": "DOWN"}]}
    _, _, problems = state_changes(door, news, None)
    assert problems == ["state (OpenClose).openState: only for devices that list openDirection; use openPercent"]


def test_an_out_of_range_percent_is_not_converted_but_refused_as_sent() -> None:
    blinds = single_trait_device("OpenClose", ONLY_UP)
    _, _, problems = state_changes(blinds, {"openPercent": 140}, None)
    assert any(problem.startswith("state (OpenClose).openPercent") for problem in problems), problems


# TemperatureSetting (traits/temperaturesetting/temperaturesetting.states.schema.json: oneOf setpoint | range)


def setpoints(device: Device) -> dict[str, Any]:
    return {key: value for key, value in device.query_states().items() if key.startswith(SETPOINT)}


def test_a_range_reported_with_heatcool_is_what_google_gets_instead_of_the_setpoint() -> None:
    thermostat = single_trait_device("TemperatureSetting", RANGED_THERMOSTAT, {"thermostatMode": "heat"})
    news = {"thermostatMode": "heatcool", f"{SETPOINT}Low": 18, f"{SETPOINT}High": 25}
    assert google_refuses("TemperatureSetting", {**thermostat.state, **news})  # the plain merge: both forms
    reported(thermostat, news)
    assert setpoints(thermostat.with_state(news)) == {f"{SETPOINT}Low": 18, f"{SETPOINT}High": 25}


def test_a_setpoint_reported_with_a_single_target_mode_is_what_google_gets_instead_of_the_range() -> None:
    thermostat = single_trait_device("TemperatureSetting", RANGED_THERMOSTAT, {"thermostatMode": "heatcool"})
    news = {"thermostatMode": "cool", SETPOINT: 23}
    assert google_refuses("TemperatureSetting", {**thermostat.state, **news})
    reported(thermostat, news)
    assert setpoints(thermostat.with_state(news)) == {SETPOINT: 23}


def test_the_form_the_mode_does_not_use_is_remembered_not_dropped() -> None:
    """Both forms may be stored (query_states sends the one the mode uses): no rule drops the other one."""
    thermostat = single_trait_device("TemperatureSetting", RANGED_THERMOSTAT, {"thermostatMode": "heatcool"})
    after = reported(thermostat, {f"{SETPOINT}Low": 18, f"{SETPOINT}High": 25})
    assert after[SETPOINT] == thermostat.state[SETPOINT]


# ColorSetting (traits/colorsetting/colorsetting.states.schema.json: color is oneOf temperatureK | spectrumRgb |
# spectrumHsv)


def test_a_color_in_another_model_replaces_the_stored_color_whole() -> None:
    light = single_trait_device("ColorSetting", {"colorModel": "rgb", "colorTemperatureRange": WHITE_RANGE})
    assert light.state == {"color": {"temperatureK": 4000}}
    assert reported(light, {"color": {"spectrumRgb": 0xFF00FF}}) == {"color": {"spectrumRgb": 0xFF00FF}}


# SensorState (traits/sensorstate/sensorstate.states.schema.json: per-sensor oneOf, rawValue or
# currentSensorState forbidden for some sensors)


def test_sensor_readings_come_whole_from_one_report() -> None:
    sensor = single_trait_device("SensorState", SMOKE_AND_FILTER)
    smoke = {"name": "SmokeLevel", "currentSensorState": "smoke detected", "rawValue": 90}
    # The reported list replaces the stored one (the merge is by key, not by sensor nor by field), so every
    # reading is one the report itself gave: the per-sensor rules hold whenever the report's own readings do.
    after = reported(sensor, {"currentSensorStateData": [smoke]})
    assert smoke in after["currentSensorStateData"]
