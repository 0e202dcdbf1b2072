"""TransportControl: only the commands the device lists, seek positions, and playbackState via MediaState."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device
from functions.core.errors import CommandError
from functions.core.schema import is_valid
from functions.core.traits.transportcontrol import CAPABILITIES, CAPABILITY, TransportControl
from tests.schema_oracle import oracle
from tests.unit.traits.media_helpers import apply, register, run

ALL = {"transportControlSupportedCommands": list(CAPABILITIES)}


def player(*capabilities: str) -> Device:
    return register(["TransportControl"], {"transportControlSupportedCommands": list(capabilities)})


def player_with_media_state(playback: str) -> Device:
    attributes = {**ALL, "supportActivityState": True, "supportPlaybackState": True}
    state = {"activityState": "ACTIVE", "playbackState": playback}
    return register(["TransportControl", "MediaState"], attributes, state)


def google_commands() -> dict[str, Any]:
    return {name.rsplit(".", 1)[-1]: spec for name, spec in oracle().trait("TransportControl").commands.items()}


def test_every_google_command_and_capability_is_mapped() -> None:
    assert set(CAPABILITY) == set(google_commands())
    attributes = oracle().trait("TransportControl").attributes
    assert attributes is not None
    google_capabilities = attributes["properties"]["transportControlSupportedCommands"]["items"]["enum"]
    assert set(CAPABILITIES) == set(google_capabilities)


def test_every_params_example_runs_where_the_device_lists_the_command() -> None:
    # Google's only attributes example lists 5 of the 10 capabilities; the conformance test cannot reach the rest.
    device = register(["TransportControl"], ALL)
    ran = 0
    for command, spec in google_commands().items():
        for params in oracle().examples(spec.params) or [{}]:
            effect = run(device, command, params)
            assert effect.state == {}, command
            apply(device, effect)
            ran += 1
    assert ran == 16


@pytest.mark.parametrize("command", sorted(CAPABILITY))
def test_a_command_the_device_does_not_list_is_refused(command: str) -> None:
    others = [capability for capability in CAPABILITIES if capability != CAPABILITY[command]]
    params = (oracle().examples(google_commands()[command].params) or [{}])[0]
    with pytest.raises(CommandError) as refused:
        run(player(*others), command, params)
    assert refused.value.code == "functionNotSupported"
    assert refused.value.code in oracle().error_codes()


def test_google_attributes_example_enables_exactly_its_commands() -> None:
    example = oracle().examples(oracle().trait("TransportControl").attributes)[0]
    device = register(["TransportControl"], example)
    assert run(device, "mediaPause").state == {}
    with pytest.raises(CommandError):
        run(device, "mediaShuffle")


@pytest.mark.parametrize(
    ("playback", "command", "expected"),
    [
        ("PLAYING", "mediaPause", "PAUSED"),
        ("PAUSED", "mediaPause", "PAUSED"),
        ("STOPPED", "mediaPause", "STOPPED"),  # nothing to pause
        ("PAUSED", "mediaResume", "PLAYING"),
        ("STOPPED", "mediaResume", "PLAYING"),
        ("PLAYING", "mediaStop", "STOPPED"),
        ("BUFFERING", "mediaNext", "BUFFERING"),
        ("PLAYING", "mediaPrevious", "PLAYING"),
        ("PLAYING", "mediaShuffle", "PLAYING"),
    ],
)
def test_playback_state_follows_the_commands_where_media_state_reports_it(
    playback: str, command: str, expected: str
) -> None:
    device = player_with_media_state(playback)
    after = apply(device, run(device, command))
    assert after.query_states() == {"activityState": "ACTIVE", "playbackState": expected}


def test_without_a_reported_playback_state_nothing_is_stored() -> None:
    device = register(["TransportControl"], ALL)
    for command in ("mediaPause", "mediaResume", "mediaStop"):
        assert run(device, command).state == {}


@pytest.mark.parametrize("position", [0, 30_000, 10 * 3600 * 1000])
def test_seek_to_any_position_from_the_start(position: int) -> None:
    assert run(player("SEEK_TO_POSITION"), "mediaSeekToPosition", {"absPositionMs": position}).state == {}


def test_seek_before_the_start_is_out_of_range() -> None:
    with pytest.raises(CommandError) as refused:
        run(player("SEEK_TO_POSITION"), "mediaSeekToPosition", {"absPositionMs": -1})
    assert refused.value.code == "valueOutOfRange"


@pytest.mark.parametrize("offset", [-10_000_000, -10_000, 0, 10_000, 10_000_000])
def test_relative_seeks_of_any_size_are_accepted(offset: int) -> None:
    assert run(player("SEEK_RELATIVE"), "mediaSeekRelative", {"relativePositionMs": offset}).state == {}


@pytest.mark.parametrize(
    ("command", "params"),
    [
        ("mediaSeekRelative", {"relativePositionMs": 1.5}),
        ("mediaSeekToPosition", {}),
        ("mediaRepeatMode", {"isSingle": True}),
        ("mediaRepeatMode", {"isOn": "yes"}),
        ("mediaClosedCaptioningOn", {"closedCaptioningLanguage": 7}),
        ("mediaPause", {"now": True}),
    ],
)
def test_malformed_params_are_a_protocol_error(command: str, params: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as refused:
        run(register(["TransportControl"], ALL), command, params)
    assert refused.value.code == "protocolError"


@pytest.mark.parametrize(
    "params",
    [{}, {"isOn": True}, {"isOn": True, "isSingle": False}, {"isSingle": True}, {"isOn": 1}, {"isOn": True, "x": 1}],
)
def test_our_repeat_params_schema_agrees_with_google(params: dict[str, Any]) -> None:
    google = google_commands()["mediaRepeatMode"].params
    ours = TransportControl.commands["action.devices.commands.mediaRepeatMode"].params_schema
    assert is_valid(ours, params) == (not oracle().problems(google, params))


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"transportControlSupportedCommands": ["FAST_FORWARD"]},
        {"transportControlSupportedCommands": ["NEXT", "NEXT"]},
    ],
)
def test_invalid_command_lists_are_refused(attributes: dict[str, Any]) -> None:
    assert TransportControl.attribute_errors(attributes) != []
