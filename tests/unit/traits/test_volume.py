"""Volume: levels within volumeMaxLevel, relative steps clamped, mute that remembers the level."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError
from functions.core.traits.volume import Volume
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device, execute

SPEAKER = {"volumeMaxLevel": 11, "volumeCanMuteAndUnmute": True, "levelStepSize": 2, "volumeDefaultPercentage": 50}
NO_MUTE = {"volumeMaxLevel": 100, "volumeCanMuteAndUnmute": False}


def states_after(attributes: dict[str, Any], command: str, params: dict[str, Any], state: Any = None) -> Any:
    after, _ = execute(device("Volume", attributes, state), command, params)
    return after.query_states()


def test_a_new_device_plays_at_its_default_percentage() -> None:
    assert device("Volume", SPEAKER).query_states() == {"currentVolume": 6, "isMuted": False}
    assert device("Volume", NO_MUTE).query_states() == {"currentVolume": 40}  # Google's default 40 %


def test_set_volume_within_the_maximum() -> None:
    assert states_after(SPEAKER, "setVolume", {"volumeLevel": 11}) == {"currentVolume": 11, "isMuted": False}
    assert states_after(SPEAKER, "setVolume", {"volumeLevel": 0}) == {"currentVolume": 0, "isMuted": False}


@pytest.mark.parametrize("level", [-1, 12])
def test_set_volume_beyond_the_maximum_is_out_of_range(level: int) -> None:
    with pytest.raises(CommandError) as refused:
        states_after(SPEAKER, "setVolume", {"volumeLevel": level})
    assert refused.value.code == "valueOutOfRange"


@pytest.mark.parametrize(("start", "steps", "expected"), [(5, 2, 7), (10, 3, 11), (1, -4, 0), (5, -1, 4)])
def test_relative_steps_clamp_to_0_and_the_maximum(start: int, steps: int, expected: int) -> None:
    states = states_after(SPEAKER, "volumeRelative", {"relativeSteps": steps}, {"currentVolume": start})
    assert states["currentVolume"] == expected


def test_mute_keeps_the_level_and_a_volume_change_unmutes() -> None:
    muted = states_after(SPEAKER, "mute", {"mute": True}, {"currentVolume": 5})
    assert muted == {"currentVolume": 5, "isMuted": True}
    louder = states_after(SPEAKER, "volumeRelative", {"relativeSteps": 2}, muted)
    assert louder == {"currentVolume": 7, "isMuted": False}
    assert states_after(SPEAKER, "mute", {"mute": False}, muted) == {"currentVolume": 5, "isMuted": False}


def test_mute_needs_volume_can_mute_and_unmute() -> None:
    with pytest.raises(CommandError) as refused:
        states_after(NO_MUTE, "mute", {"mute": True})
    assert refused.value.code == "functionNotSupported"
    assert states_after(NO_MUTE, "setVolume", {"volumeLevel": 3}) == {"currentVolume": 3}


def test_command_only_device_executes_but_reports_nothing() -> None:
    dev = device("Volume", {**SPEAKER, "commandOnlyVolume": True})
    assert dev.query_states() == {}
    after, effect = execute(dev, "volumeRelative", {"relativeSteps": -1})
    assert effect.state == {"currentVolume": 5, "isMuted": False}
    assert after.state == {}


def test_google_examples_are_valid_for_us() -> None:
    for example in oracle().examples(oracle().trait("Volume").states):
        assert Volume.state_errors(SPEAKER, example) == [], example
