"""TemperatureControl: a Celsius setpoint within temperatureRange; query-only and command-only devices."""

from __future__ import annotations

import pytest

from functions.core.errors import CommandError
from functions.core.traits.temperaturecontrol import TemperatureControl
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device, execute

OVEN = {
    "temperatureRange": {"minThresholdCelsius": 65.5, "maxThresholdCelsius": 260},
    "temperatureStepCelsius": 2.778,
    "temperatureUnitForUX": "F",
}


def test_a_new_device_starts_at_its_lowest_setting() -> None:
    assert device("TemperatureControl", OVEN).query_states() == {"temperatureSetpointCelsius": 65.5}


def test_set_temperature_within_the_range() -> None:
    after, _ = execute(device("TemperatureControl", OVEN), "SetTemperature", {"temperature": 176.67})
    assert after.query_states() == {"temperatureSetpointCelsius": 176.67}


@pytest.mark.parametrize("celsius", [65.4, 260.1])
def test_set_temperature_outside_the_range_is_out_of_range(celsius: float) -> None:
    with pytest.raises(CommandError) as refused:
        execute(device("TemperatureControl", OVEN), "SetTemperature", {"temperature": celsius})
    assert refused.value.code == "valueOutOfRange"


def test_query_only_device_has_no_setpoint_and_refuses_commands() -> None:
    thermometer = device(
        "TemperatureControl", {**OVEN, "queryOnlyTemperatureControl": True}, {"temperatureAmbientCelsius": 20.5}
    )
    assert thermometer.query_states() == {"temperatureAmbientCelsius": 20.5}
    with pytest.raises(CommandError) as refused:
        execute(thermometer, "SetTemperature", {"temperature": 100})
    assert refused.value.code == "functionNotSupported"


def test_command_only_device_executes_but_reports_nothing() -> None:
    dev = device("TemperatureControl", {**OVEN, "commandOnlyTemperatureControl": True})
    assert dev.query_states() == {}
    after, effect = execute(dev, "SetTemperature", {"temperature": 200})
    assert effect.state == {"temperatureSetpointCelsius": 200}
    assert after.state == {}


def test_google_examples_are_valid_for_us() -> None:
    for example in oracle().examples(oracle().trait("TemperatureControl").states):
        assert TemperatureControl.state_errors(OVEN, example) == [], example
