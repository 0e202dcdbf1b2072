"""Brightness: absolute levels within 0..100, relative changes clamped, command-only devices."""

from __future__ import annotations

import pytest

from functions.core.errors import CommandError
from functions.core.traits.brightness import Brightness
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device, execute


def test_new_device_is_at_full_brightness() -> None:
    assert device("Brightness", {}).query_states() == {"brightness": 100}


def test_absolute_sets_the_level() -> None:
    after, _ = execute(device("Brightness", {}), "BrightnessAbsolute", {"brightness": 65})
    assert after.query_states() == {"brightness": 65}


@pytest.mark.parametrize("level", [-1, 101])
def test_absolute_outside_0_to_100_is_out_of_range(level: int) -> None:
    with pytest.raises(CommandError) as refused:
        execute(device("Brightness", {}), "BrightnessAbsolute", {"brightness": level})
    assert refused.value.code == "valueOutOfRange"


@pytest.mark.parametrize(
    ("start", "params", "expected"),
    [
        (40, {"brightnessRelativePercent": 20}, 60),
        (90, {"brightnessRelativePercent": 20}, 100),  # clamped at the top
        (40, {"brightnessRelativePercent": -20}, 20),  # a negative percent dims
        (10, {"brightnessRelativePercent": -50}, 0),  # clamped at the bottom
        (50, {"brightnessRelativeWeight": -1}, 40),  # "a little dimmer"
        (50, {"brightnessRelativeWeight": 5}, 100),  # "a lot brighter"
        (5, {"brightnessRelativeWeight": -5}, 0),
    ],
)
def test_relative_changes_clamp_to_0_to_100(start: int, params: dict[str, int], expected: int) -> None:
    after, _ = execute(device("Brightness", {}, {"brightness": start}), "BrightnessRelative", params)
    assert after.query_states() == {"brightness": expected}


def test_relative_needs_exactly_one_of_percent_or_weight() -> None:
    dev = device("Brightness", {}, {"brightness": 40})
    for params in ({}, {"brightnessRelativePercent": 10, "brightnessRelativeWeight": 1}):
        with pytest.raises(CommandError) as refused:
            execute(dev, "BrightnessRelative", params)
        assert refused.value.code == "protocolError"


def test_command_only_device_executes_but_reports_nothing() -> None:
    dev = device("Brightness", {"commandOnlyBrightness": True})
    assert dev.query_states() == {}
    after, effect = execute(dev, "BrightnessRelative", {"brightnessRelativeWeight": -2})
    assert effect.state == {"brightness": 80}
    assert after.state == {}


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("Brightness")
    for example in oracle().examples(schemas.states):
        assert Brightness.state_errors({}, example) == [], example
