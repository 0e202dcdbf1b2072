"""MediaState: query-only states, each reported only where the device says it can report it."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError, InvalidDevice
from functions.core.traits import get
from functions.core.traits.base import CommandContext
from functions.core.traits.mediastate import MediaState
from tests.schema_oracle import oracle
from tests.unit.traits.media_helpers import NOW_MS, register

BOTH = {"supportActivityState": True, "supportPlaybackState": True}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (BOTH, {"activityState": "INACTIVE", "playbackState": "STOPPED"}),
        ({"supportPlaybackState": True}, {"playbackState": "STOPPED"}),
        ({"supportActivityState": True, "supportPlaybackState": False}, {"activityState": "INACTIVE"}),
        ({}, {}),
    ],
)
def test_a_new_device_reports_only_the_states_it_supports(attributes: dict[str, Any], expected: dict[str, Any]) -> None:
    device = register(["MediaState"], attributes)
    assert device.query_states() == expected
    oracle().assert_states(device.trait_names, device.query_states(), "initial MediaState")


def test_reported_states_are_stored_and_answered() -> None:
    device = register(["MediaState"], BOTH, {"activityState": "ACTIVE", "playbackState": "BUFFERING"})
    assert device.query_states() == {"activityState": "ACTIVE", "playbackState": "BUFFERING"}
    oracle().assert_states(device.trait_names, device.query_states(), "MediaState")


def test_a_state_the_device_cannot_report_is_refused() -> None:
    with pytest.raises(InvalidDevice, match="activityState"):
        register(["MediaState"], {"supportPlaybackState": True}, {"activityState": "ACTIVE"})


@pytest.mark.parametrize("state", [{"playbackState": "SEEKING"}, {"activityState": "active"}])
def test_values_google_does_not_define_are_refused(state: dict[str, Any]) -> None:
    with pytest.raises(InvalidDevice, match=r"\(MediaState\)"):
        register(["MediaState"], BOTH, state)


def test_media_state_takes_no_commands() -> None:
    trait = get("MediaState")
    assert trait is not None
    assert trait.commands == {}
    ctx = CommandContext("d1", "action.devices.commands.mediaPause", {}, BOTH, {}, NOW_MS)
    with pytest.raises(CommandError) as refused:
        trait.execute(ctx)
    assert refused.value.code == "functionNotSupported"


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("MediaState")
    for example in oracle().examples(schemas.states):
        assert MediaState.state_errors(BOTH, example) == [], example
    for example in oracle().examples(schemas.attributes):
        assert MediaState.attribute_errors(example) == [], example
