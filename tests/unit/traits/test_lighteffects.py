"""LightEffects: supported effects only, durations within 5 minutes .. 1 hour, end times, StopEffect."""

from __future__ import annotations

import pytest

from functions.core.errors import CommandError
from functions.core.traits.lighteffects import LightEffects
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import NOW_MS, device, execute

LOOP = {"supportedEffects": ["colorLoop"]}
SLEEP_WAKE = {"supportedEffects": ["sleep", "wake"], "defaultSleepDuration": 300, "defaultWakeDuration": 600}
NOW_S = NOW_MS // 1000


def test_a_new_light_runs_no_effect() -> None:
    assert device("LightEffects", LOOP).query_states() == {}


def test_color_loop_runs_for_the_duration_asked() -> None:
    after, _ = execute(device("LightEffects", LOOP), "ColorLoop", {"duration": 3600})
    assert after.query_states() == {"activeLightEffect": "colorLoop", "lightEffectEndUnixTimestampSec": NOW_S + 3600}


def test_durations_default_to_the_device_defaults_or_30_minutes() -> None:
    after, _ = execute(device("LightEffects", SLEEP_WAKE), "Sleep", {})
    assert after.query_states() == {"activeLightEffect": "sleep", "lightEffectEndUnixTimestampSec": NOW_S + 300}
    after, _ = execute(after, "Wake", {})
    assert after.query_states() == {"activeLightEffect": "wake", "lightEffectEndUnixTimestampSec": NOW_S + 600}
    after, _ = execute(device("LightEffects", LOOP), "ColorLoop", {})
    assert after.query_states()["lightEffectEndUnixTimestampSec"] == NOW_S + 1800


@pytest.mark.parametrize(
    ("duration", "code"), [(299, "belowMinimumLightEffectsDuration"), (3601, "aboveMaximumLightEffectsDuration")]
)
def test_durations_beyond_google_bounds_are_refused(duration: int, code: str) -> None:
    with pytest.raises(CommandError) as refused:
        execute(device("LightEffects", SLEEP_WAKE), "Wake", {"duration": duration})
    assert refused.value.code == code


def test_an_unsupported_effect_is_refused() -> None:
    with pytest.raises(CommandError) as refused:
        execute(device("LightEffects", LOOP), "Sleep", {"duration": 600})
    assert refused.value.code == "functionNotSupported"


def test_stop_effect_ends_the_effect_and_is_harmless_when_none_runs() -> None:
    running, _ = execute(device("LightEffects", LOOP), "ColorLoop", {"duration": 600})
    stopped, _ = execute(running, "StopEffect", {})
    assert stopped.query_states() == {}
    again, _ = execute(stopped, "StopEffect", {})
    assert again.query_states() == {}


def test_a_default_duration_beyond_the_bounds_is_refused_at_registration() -> None:
    with pytest.raises(Exception, match=r"\(LightEffects\)"):
        device("LightEffects", {"supportedEffects": ["sleep"], "defaultSleepDuration": 60})


def test_google_examples_are_valid_for_us() -> None:
    for example in oracle().examples(oracle().trait("LightEffects").states):
        assert LightEffects.state_errors(LOOP, example) == [], example
        assert LightEffects.query_states(LOOP, example) == example
