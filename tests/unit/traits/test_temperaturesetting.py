"""TemperatureSetting: modes, setpoints within the range, heatcool ranges and their buffer, relative changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from functions.core.device import Device
from functions.core.errors import CommandError, InvalidDevice
from functions.core.traits.temperaturesetting import TemperatureSetting
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device, execute

BASIC = {"availableThermostatModes": ["off", "heat", "cool", "on"], "thermostatTemperatureUnit": "C"}
RANGED = {
    "availableThermostatModes": ["off", "heat", "cool", "heatcool"],
    "thermostatTemperatureUnit": "C",
    "thermostatTemperatureRange": {"minThresholdCelsius": 15, "maxThresholdCelsius": 30},
    "bufferRangeCelsius": 3,
}
FAHRENHEIT = {**BASIC, "thermostatTemperatureUnit": "F"}
HEATCOOL_STATE = {
    "thermostatMode": "heatcool",
    "thermostatTemperatureSetpointLow": 20,
    "thermostatTemperatureSetpointHigh": 24,
    "thermostatTemperatureAmbient": 22,
}


def run(attributes: Mapping[str, Any], command: str, params: dict[str, Any], state: Any = None) -> dict[str, Any]:
    after, _ = execute(device("TemperatureSetting", attributes, state), command, params)
    return after.query_states()


def refused(attributes: Mapping[str, Any], command: str, params: dict[str, Any], state: Any = None) -> str:
    with pytest.raises(CommandError) as error:
        run(attributes, command, params, state)
    return error.value.code


def test_a_new_thermostat_is_off_at_21_c_with_a_range_where_heatcool_exists() -> None:
    assert device("TemperatureSetting", BASIC).query_states() == {
        "thermostatMode": "off",
        "thermostatTemperatureSetpoint": 21,
        "thermostatTemperatureAmbient": 21,
    }
    ranged = device("TemperatureSetting", RANGED)
    assert ranged.state["thermostatTemperatureSetpointLow"] == 19.5
    assert ranged.state["thermostatTemperatureSetpointHigh"] == 22.5


def test_the_deprecated_comma_separated_modes_are_accepted() -> None:
    dev = device("TemperatureSetting", {**BASIC, "availableThermostatModes": "heat,cool"})
    assert dev.query_states()["thermostatMode"] == "heat"
    assert run(dev.attributes, "ThermostatSetMode", {"thermostatMode": "cool"})["thermostatMode"] == "cool"
    assert refused(dev.attributes, "ThermostatSetMode", {"thermostatMode": "off"}) == "notSupported"


def test_unknown_modes_in_the_attributes_are_refused() -> None:
    with pytest.raises(InvalidDevice, match=r"\(TemperatureSetting\)"):
        device("TemperatureSetting", {**BASIC, "availableThermostatModes": ["off", "turbo"]})


def test_setpoint_within_the_default_range_of_10_to_32() -> None:
    assert (
        run(BASIC, "ThermostatTemperatureSetpoint", {"thermostatTemperatureSetpoint": 10})[
            "thermostatTemperatureSetpoint"
        ]
        == 10
    )
    assert (
        run(FAHRENHEIT, "ThermostatTemperatureSetpoint", {"thermostatTemperatureSetpoint": 22.2})[
            "thermostatTemperatureSetpoint"
        ]
        == 22.2
    )  # Celsius on the wire even for a Fahrenheit display
    for value in (9.9, 32.1):
        assert refused(BASIC, "ThermostatTemperatureSetpoint", {"thermostatTemperatureSetpoint": value}) == (
            "valueOutOfRange"
        )


def test_setpoint_outside_the_device_range_is_out_of_range() -> None:
    assert refused(RANGED, "ThermostatTemperatureSetpoint", {"thermostatTemperatureSetpoint": 31}) == "valueOutOfRange"


def test_a_single_setpoint_in_heatcool_centres_the_range_keeping_its_width() -> None:
    states = run(RANGED, "ThermostatTemperatureSetpoint", {"thermostatTemperatureSetpoint": 29}, HEATCOOL_STATE)
    assert states["thermostatTemperatureSetpointLow"] == 26
    assert states["thermostatTemperatureSetpointHigh"] == 30  # moved as a whole to fit below the maximum


def test_set_range_respects_the_buffer_and_switches_to_heatcool() -> None:
    states = run(
        RANGED,
        "ThermostatTemperatureSetRange",
        {"thermostatTemperatureSetpointLow": 20, "thermostatTemperatureSetpointHigh": 23},
    )
    assert states == {
        "thermostatMode": "heatcool",
        "thermostatTemperatureSetpointLow": 20,
        "thermostatTemperatureSetpointHigh": 23,
        "thermostatTemperatureAmbient": 21,
    }
    close = {"thermostatTemperatureSetpointLow": 20, "thermostatTemperatureSetpointHigh": 22.9}
    assert refused(RANGED, "ThermostatTemperatureSetRange", close) == "rangeTooClose"
    upside_down = {"thermostatTemperatureSetpointLow": 25, "thermostatTemperatureSetpointHigh": 20}
    assert refused(RANGED, "ThermostatTemperatureSetRange", upside_down) == "rangeTooClose"


def test_the_default_buffer_is_2_c() -> None:
    attributes = {k: v for k, v in RANGED.items() if k != "bufferRangeCelsius"}
    ok = {"thermostatTemperatureSetpointLow": 20, "thermostatTemperatureSetpointHigh": 22}
    assert run(attributes, "ThermostatTemperatureSetRange", ok)["thermostatTemperatureSetpointHigh"] == 22
    close = {"thermostatTemperatureSetpointLow": 20, "thermostatTemperatureSetpointHigh": 21.9}
    assert refused(attributes, "ThermostatTemperatureSetRange", close) == "rangeTooClose"


def test_set_range_outside_the_device_range_is_out_of_range() -> None:
    wide = {"thermostatTemperatureSetpointLow": 14, "thermostatTemperatureSetpointHigh": 25}
    assert refused(RANGED, "ThermostatTemperatureSetRange", wide) == "valueOutOfRange"


def test_set_range_needs_heatcool_mode() -> None:
    params = {"thermostatTemperatureSetpointLow": 20, "thermostatTemperatureSetpointHigh": 25}
    assert refused(BASIC, "ThermostatTemperatureSetRange", params) == "notSupported"


def test_modes_come_from_the_available_modes() -> None:
    assert run(BASIC, "ThermostatSetMode", {"thermostatMode": "heat"})["thermostatMode"] == "heat"
    assert refused(BASIC, "ThermostatSetMode", {"thermostatMode": "heatcool"}) == "notSupported"
    assert refused(BASIC, "ThermostatSetMode", {"thermostatMode": "none"}) == "protocolError"


def test_switching_modes_switches_between_setpoint_and_range() -> None:
    dev = device("TemperatureSetting", RANGED)
    dev, _ = execute(dev, "ThermostatTemperatureSetpoint", {"thermostatTemperatureSetpoint": 25})
    dev, _ = execute(dev, "ThermostatSetMode", {"thermostatMode": "heatcool"})
    assert "thermostatTemperatureSetpoint" not in dev.query_states()
    assert dev.query_states()["thermostatTemperatureSetpointLow"] == 19.5
    dev, _ = execute(dev, "ThermostatSetMode", {"thermostatMode": "cool"})
    assert dev.query_states() == {
        "thermostatMode": "cool",
        "thermostatTemperatureSetpoint": 25,  # remembered from before heatcool
        "thermostatTemperatureAmbient": 21,
    }


def test_heatcool_gets_a_range_around_the_setpoint_when_none_is_stored() -> None:
    state = {"thermostatMode": "heat", "thermostatTemperatureSetpoint": 29.5, "thermostatTemperatureAmbient": 20}
    dev = device("TemperatureSetting", {**RANGED, "bufferRangeCelsius": 2}, state)
    # As a device cloud may store it: no range yet.
    dev = Device(dev.id, dev.definition, {k: v for k, v in dev.state.items() if "Low" not in k and "High" not in k})
    _, effect = execute(dev, "ThermostatSetMode", {"thermostatMode": "heatcool"})
    assert effect.state["thermostatTemperatureSetpointLow"] == 28
    assert effect.state["thermostatTemperatureSetpointHigh"] == 30


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"thermostatTemperatureRelativeDegree": 2}, 23),
        ({"thermostatTemperatureRelativeDegree": -1.5}, 19.5),
        ({"thermostatTemperatureRelativeDegree": 50}, 32),  # clamped at the maximum
        ({"thermostatTemperatureRelativeWeight": -5}, 16),
        ({"thermostatTemperatureRelativeWeight": 1}, 22),
    ],
)
def test_relative_changes_clamp_to_the_range(params: dict[str, Any], expected: float) -> None:
    assert run(BASIC, "TemperatureRelative", params)["thermostatTemperatureSetpoint"] == expected


def test_a_weight_is_one_display_degree() -> None:
    states = run(FAHRENHEIT, "TemperatureRelative", {"thermostatTemperatureRelativeWeight": 2})
    assert states["thermostatTemperatureSetpoint"] == 22.11  # 21 C + 2 F


def test_relative_at_the_limit_is_already_at_max_or_min() -> None:
    at_max = {"thermostatMode": "heat", "thermostatTemperatureSetpoint": 32, "thermostatTemperatureAmbient": 20}
    assert refused(BASIC, "TemperatureRelative", {"thermostatTemperatureRelativeWeight": 1}, at_max) == "alreadyAtMax"
    assert (
        run(BASIC, "TemperatureRelative", {"thermostatTemperatureRelativeWeight": -1}, at_max)[
            "thermostatTemperatureSetpoint"
        ]
        == 31
    )
    at_min = {**at_max, "thermostatTemperatureSetpoint": 10}
    assert refused(BASIC, "TemperatureRelative", {"thermostatTemperatureRelativeDegree": -1}, at_min) == "alreadyAtMin"


def test_relative_in_heatcool_moves_the_range_as_a_whole() -> None:
    states = run(RANGED, "TemperatureRelative", {"thermostatTemperatureRelativeDegree": 10}, HEATCOOL_STATE)
    assert (states["thermostatTemperatureSetpointLow"], states["thermostatTemperatureSetpointHigh"]) == (26, 30)
    top = {**HEATCOOL_STATE, "thermostatTemperatureSetpointLow": 26, "thermostatTemperatureSetpointHigh": 30}
    assert refused(RANGED, "TemperatureRelative", {"thermostatTemperatureRelativeWeight": 1}, top) == "alreadyAtMax"


def test_query_only_thermostat_refuses_commands_and_reports() -> None:
    attributes = {**BASIC, "queryOnlyTemperatureSetting": True}
    assert device("TemperatureSetting", attributes).query_states()["thermostatTemperatureAmbient"] == 21
    assert refused(attributes, "ThermostatSetMode", {"thermostatMode": "heat"}) == "functionNotSupported"


def test_command_only_thermostat_executes_but_reports_nothing() -> None:
    dev = device("TemperatureSetting", {**BASIC, "commandOnlyTemperatureSetting": True})
    assert dev.query_states() == {}
    after, effect = execute(dev, "TemperatureRelative", {"thermostatTemperatureRelativeWeight": 1})
    assert effect.state == {"thermostatTemperatureSetpoint": 22}
    assert after.state == {}


def test_command_only_and_query_only_together_are_refused() -> None:
    both = {**BASIC, "commandOnlyTemperatureSetting": True, "queryOnlyTemperatureSetting": True}
    with pytest.raises(InvalidDevice, match="cannot both be true"):
        device("TemperatureSetting", both)


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("TemperatureSetting")
    for example in oracle().examples(schemas.states):
        assert TemperatureSetting.state_errors(RANGED, example) == [], example
        assert TemperatureSetting.query_states(RANGED, example) == example
