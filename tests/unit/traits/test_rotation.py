"""Rotation: degrees within rotationDegreesRange, percent, the two kept in step, continuous rotation wraps."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError, InvalidDevice
from functions.core.traits.rotation import Rotation
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device, execute

BOTH = {
    "supportsDegrees": True,
    "supportsPercent": True,
    "rotationDegreesRange": {"rotationDegreesMin": 0, "rotationDegreesMax": 180},
}
DEGREES_ONLY = {
    **BOTH,
    "supportsPercent": False,
    "rotationDegreesRange": {"rotationDegreesMin": 10, "rotationDegreesMax": 90},
}
PERCENT_ONLY = {"supportsDegrees": False, "supportsPercent": True}
CONTINUOUS = {
    **BOTH,
    "rotationDegreesRange": {"rotationDegreesMin": 0, "rotationDegreesMax": 360},
    "supportsContinuousRotation": True,
}


def states_after(attributes: dict[str, Any], params: dict[str, Any]) -> Any:
    after, _ = execute(device("Rotation", attributes), "RotateAbsolute", params)
    return after.query_states()


def refused(attributes: dict[str, Any], params: dict[str, Any]) -> str:
    with pytest.raises(CommandError) as error:
        states_after(attributes, params)
    return error.value.code


def test_a_new_device_is_at_the_start_of_its_range() -> None:
    assert device("Rotation", BOTH).query_states() == {"rotationDegrees": 0, "rotationPercent": 0}
    assert device("Rotation", DEGREES_ONLY).query_states() == {"rotationDegrees": 10}
    assert device("Rotation", PERCENT_ONLY).query_states() == {"rotationPercent": 0}


def test_degrees_and_percent_follow_each_other() -> None:
    assert states_after(BOTH, {"rotationDegrees": 45}) == {"rotationDegrees": 45, "rotationPercent": 25}
    assert states_after(BOTH, {"rotationPercent": 50}) == {"rotationDegrees": 90, "rotationPercent": 50}
    assert states_after(DEGREES_ONLY, {"rotationDegrees": 30}) == {"rotationDegrees": 30}


def test_degrees_outside_the_range_are_out_of_range() -> None:
    assert refused(DEGREES_ONLY, {"rotationDegrees": 9}) == "valueOutOfRange"
    assert refused(BOTH, {"rotationDegrees": 181}) == "valueOutOfRange"
    assert refused(BOTH, {"rotationPercent": 100.5}) == "valueOutOfRange"


def test_continuous_rotation_wraps_around_the_range() -> None:
    assert states_after(CONTINUOUS, {"rotationDegrees": 370}) == {"rotationDegrees": 10, "rotationPercent": 2.78}
    assert states_after(CONTINUOUS, {"rotationDegrees": -90}) == {"rotationDegrees": 270, "rotationPercent": 75}
    assert states_after(CONTINUOUS, {"rotationDegrees": 360})["rotationDegrees"] == 360


def test_a_way_of_rotating_the_device_lacks_is_not_supported() -> None:
    assert refused(DEGREES_ONLY, {"rotationPercent": 50}) == "functionNotSupported"
    assert refused(PERCENT_ONLY, {"rotationDegrees": 50}) == "functionNotSupported"


def test_degrees_need_a_range_and_some_way_of_rotating() -> None:
    with pytest.raises(InvalidDevice, match=r"\(Rotation\)"):
        device("Rotation", {"supportsDegrees": True, "supportsPercent": False})
    with pytest.raises(InvalidDevice, match=r"\(Rotation\)"):
        device("Rotation", {"supportsDegrees": False, "supportsPercent": False})


def test_command_only_device_executes_but_reports_nothing() -> None:
    dev = device("Rotation", {**CONTINUOUS, "commandOnlyRotation": True})
    assert dev.query_states() == {}
    after, effect = execute(dev, "RotateAbsolute", {"rotationDegrees": 400})
    assert effect.state == {"rotationDegrees": 40, "rotationPercent": 11.11}
    assert after.state == {}


def test_google_examples_are_valid_for_us() -> None:
    for example in oracle().examples(oracle().trait("Rotation").states):
        assert Rotation.state_errors(CONTINUOUS, example) == [], example
