"""HumiditySetting: setpoints within humiditySetpointRange, relative changes clamped, limits reached."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError
from functions.core.traits.humiditysetting import HumiditySetting
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device, execute

NARROW = {"humiditySetpointRange": {"minPercent": 25, "maxPercent": 75}}


def setpoint_after(attributes: dict[str, Any], command: str, params: dict[str, Any], start: int | None = None) -> Any:
    state = None if start is None else {"humiditySetpointPercent": start}
    after, _ = execute(device("HumiditySetting", attributes, state), command, params)
    return after.query_states()["humiditySetpointPercent"]


def test_a_new_device_aims_at_50_percent_within_its_range() -> None:
    assert device("HumiditySetting", {}).query_states() == {"humiditySetpointPercent": 50}
    high = {"humiditySetpointRange": {"minPercent": 60, "maxPercent": 90}}
    assert device("HumiditySetting", high).query_states() == {"humiditySetpointPercent": 60}


def test_set_humidity_within_the_range() -> None:
    assert setpoint_after(NARROW, "SetHumidity", {"humidity": 25}) == 25
    assert setpoint_after({}, "SetHumidity", {"humidity": 100}) == 100


@pytest.mark.parametrize(("attributes", "humidity"), [(NARROW, 24), (NARROW, 76), ({}, 101), ({}, -1)])
def test_set_humidity_outside_the_range_is_out_of_range(attributes: dict[str, Any], humidity: int) -> None:
    with pytest.raises(CommandError) as refused:
        setpoint_after(attributes, "SetHumidity", {"humidity": humidity})
    assert refused.value.code == "valueOutOfRange"


@pytest.mark.parametrize(
    ("start", "params", "expected"),
    [
        (50, {"humidityRelativePercent": 10}, 60),
        (70, {"humidityRelativePercent": 10}, 75),  # stops at the maximum
        (30, {"humidityRelativeWeight": -5}, 25),  # stops at the minimum
        (50, {"humidityRelativeWeight": 1}, 55),
    ],
)
def test_relative_changes_clamp_to_the_range(start: int, params: dict[str, int], expected: int) -> None:
    assert setpoint_after(NARROW, "HumidityRelative", params, start) == expected


def test_relative_at_a_limit_reports_the_setting_reached() -> None:
    with pytest.raises(CommandError) as at_max:
        setpoint_after(NARROW, "HumidityRelative", {"humidityRelativePercent": 5}, 75)
    assert at_max.value.code == "maxSettingReached"
    with pytest.raises(CommandError) as at_min:
        setpoint_after(NARROW, "HumidityRelative", {"humidityRelativeWeight": -1}, 25)
    assert at_min.value.code == "minSettingReached"


def test_query_only_device_reports_ambient_and_refuses_commands() -> None:
    hygrometer = device("HumiditySetting", {"queryOnlyHumiditySetting": True}, {"humidityAmbientPercent": 40})
    assert hygrometer.query_states() == {"humidityAmbientPercent": 40}
    with pytest.raises(CommandError) as refused:
        execute(hygrometer, "SetHumidity", {"humidity": 50})
    assert refused.value.code == "functionNotSupported"


def test_command_only_device_executes_but_reports_nothing() -> None:
    dev = device("HumiditySetting", {"commandOnlyHumiditySetting": True})
    assert dev.query_states() == {}
    after, effect = execute(dev, "HumidityRelative", {"humidityRelativePercent": -20})
    assert effect.state == {"humiditySetpointPercent": 30}
    assert after.state == {}


def test_google_examples_are_valid_for_us() -> None:
    for example in oracle().examples(oracle().trait("HumiditySetting").states):
        assert HumiditySetting.state_errors({}, example) == [], example
