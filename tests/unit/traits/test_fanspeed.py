"""FanSpeed: settings by name or synonym, percentages, relative changes clamped, Reverse only when reversible."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError
from functions.core.traits.fanspeed import FanSpeed
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device, execute


def speed(name: str, en: list[str], de: list[str] | None = None) -> dict[str, Any]:
    values = [{"speed_synonym": en, "lang": "en"}]
    if de:
        values.append({"speed_synonym": de, "lang": "de"})
    return {"speed_name": name, "speed_values": values}


SPEEDS = [
    speed("speed_low", ["low", "slow"], ["langsam"]),
    speed("speed_medium", ["medium"]),
    speed("speed_high", ["high", "fast"], ["schnell"]),
]
ORDERED = {"availableFanSpeeds": {"speeds": SPEEDS, "ordered": True}}
UNORDERED = {"availableFanSpeeds": {"speeds": SPEEDS, "ordered": False}}
PERCENT = {"supportsFanSpeedPercent": True}
BOTH = {**ORDERED, **PERCENT, "reversible": True}


def states_after(attributes: dict[str, Any], command: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    state = kwargs.pop("state", None)
    after, _ = execute(device("FanSpeed", attributes, state), command, params, **kwargs)
    return after.query_states()


def test_new_devices_start_at_the_lowest_setting() -> None:
    assert device("FanSpeed", ORDERED).query_states() == {"currentFanSpeedSetting": "speed_low"}
    assert device("FanSpeed", PERCENT).query_states() == {"currentFanSpeedPercent": 0}
    assert device("FanSpeed", BOTH).query_states() == {
        "currentFanSpeedSetting": "speed_low",
        "currentFanSpeedPercent": 33.33,
    }


@pytest.mark.parametrize(
    ("asked", "language"),
    [("speed_high", "en"), ("SPEED_HIGH", "de"), ("fast", "en"), ("HIGH", "en"), ("fast", "en-US"), ("schnell", "de")],
)
def test_a_setting_is_found_by_name_or_synonym_in_the_language(asked: str, language: str) -> None:
    assert states_after(UNORDERED, "SetFanSpeed", {"fanSpeed": asked}, language=language) == {
        "currentFanSpeedSetting": "speed_high"
    }


@pytest.mark.parametrize(("asked", "language"), [("turbo", "en"), ("schnell", "en"), ("fast", "de")])
def test_an_unknown_setting_is_not_supported(asked: str, language: str) -> None:
    with pytest.raises(CommandError) as refused:
        states_after(UNORDERED, "SetFanSpeed", {"fanSpeed": asked}, language=language)
    assert refused.value.code == "notSupported"


def test_with_ordered_settings_and_percent_the_two_follow_each_other() -> None:
    assert states_after(BOTH, "SetFanSpeed", {"fanSpeed": "medium"}) == {
        "currentFanSpeedSetting": "speed_medium",
        "currentFanSpeedPercent": 66.67,
    }
    assert states_after(BOTH, "SetFanSpeed", {"fanSpeedPercent": 70}) == {
        "currentFanSpeedSetting": "speed_high",
        "currentFanSpeedPercent": 70,
    }
    assert states_after(BOTH, "SetFanSpeed", {"fanSpeedPercent": 0})["currentFanSpeedSetting"] == "speed_low"


def test_percent_needs_percent_support() -> None:
    with pytest.raises(CommandError) as refused:
        states_after(ORDERED, "SetFanSpeed", {"fanSpeedPercent": 50})
    assert refused.value.code == "functionNotSupported"


@pytest.mark.parametrize("percent", [-0.5, 100.5])
def test_percent_outside_0_to_100_is_out_of_range(percent: float) -> None:
    with pytest.raises(CommandError) as refused:
        states_after(PERCENT, "SetFanSpeed", {"fanSpeedPercent": percent})
    assert refused.value.code == "valueOutOfRange"


@pytest.mark.parametrize(
    ("start", "weight", "expected"),
    [
        ("speed_low", 1, "speed_medium"),
        ("speed_medium", -1, "speed_low"),
        ("speed_medium", 5, "speed_high"),
        ("speed_low", -3, "speed_low"),
    ],
)
def test_a_weight_moves_through_ordered_settings_clamped(start: str, weight: int, expected: str) -> None:
    after = states_after(
        ORDERED, "SetFanSpeedRelative", {"fanSpeedRelativeWeight": weight}, state={"currentFanSpeedSetting": start}
    )
    assert after == {"currentFanSpeedSetting": expected}


@pytest.mark.parametrize(
    ("start", "params", "expected"),
    [
        (50, {"fanSpeedRelativePercent": 10}, 60),
        (95, {"fanSpeedRelativePercent": 10}, 100),
        (5, {"fanSpeedRelativePercent": -10}, 0),
        (50, {"fanSpeedRelativeWeight": -1}, 40),
        (80, {"fanSpeedRelativeWeight": 5}, 100),
    ],
)
def test_relative_percent_changes_clamp_to_0_to_100(start: float, params: dict[str, Any], expected: float) -> None:
    after = states_after(PERCENT, "SetFanSpeedRelative", params, state={"currentFanSpeedPercent": start})
    assert after == {"currentFanSpeedPercent": expected}


def test_relative_percent_with_ordered_settings_moves_the_setting_too() -> None:
    after = states_after(
        BOTH,
        "SetFanSpeedRelative",
        {"fanSpeedRelativePercent": 40},
        state={"currentFanSpeedSetting": "speed_low", "currentFanSpeedPercent": 33.33},
    )
    assert after == {"currentFanSpeedSetting": "speed_high", "currentFanSpeedPercent": 73.33}


def test_relative_changes_of_unordered_settings_are_not_supported() -> None:
    with pytest.raises(CommandError) as refused:
        states_after(UNORDERED, "SetFanSpeedRelative", {"fanSpeedRelativeWeight": 1})
    assert refused.value.code == "functionNotSupported"


def test_reverse_only_when_reversible() -> None:
    after, effect = execute(device("FanSpeed", BOTH), "Reverse", {})
    assert effect.state == {}
    assert after.query_states() == device("FanSpeed", BOTH).query_states()
    with pytest.raises(CommandError) as refused:
        execute(device("FanSpeed", ORDERED), "Reverse", {})
    assert refused.value.code == "functionNotSupported"


def test_command_only_device_executes_but_reports_nothing() -> None:
    dev = device("FanSpeed", {**PERCENT, "commandOnlyFanSpeed": True})
    assert dev.query_states() == {}
    after, effect = execute(dev, "SetFanSpeed", {"fanSpeedPercent": 30})
    assert effect.state == {"currentFanSpeedPercent": 30}
    assert after.state == {}


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("FanSpeed")
    for example in oracle().examples(schemas.states):
        assert FanSpeed.state_errors(BOTH, example) == [], example
