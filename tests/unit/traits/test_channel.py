"""Channel: selection by code, name or number, noAvailableChannel, and the stateless relative / return commands."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device
from functions.core.errors import CommandError, InvalidDevice
from functions.core.schema import is_valid
from functions.core.traits.channel import Channel
from tests.schema_oracle import oracle
from tests.unit.traits.media_helpers import apply, register, run

CHANNELS: dict[str, Any] = {
    "availableChannels": [
        {"key": "ktvu2", "names": ["Fox", "KTVU"], "number": "2"},
        {"key": "abc1", "names": ["ABC", "ABC East"], "number": "4-11"},
        {"key": "pbs", "names": ["PBS"]},
    ]
}


def tuner(**switches: Any) -> Device:
    return register(["Channel"], {**CHANNELS, **switches})


def select_errors() -> list[str]:
    schema = oracle().trait("Channel").commands["action.devices.commands.selectChannel"].errors
    assert schema is not None
    return list(schema["enum"])


@pytest.mark.parametrize(
    "params",
    [
        {"channelCode": "ktvu2", "channelName": "KTVU"},
        {"channelCode": "pbs"},
        {"channelCode": "unknown", "channelName": "abc east"},  # the name Google heard still finds it
        {"channelNumber": "4-11"},
        {"channelNumber": "3"},  # a number the device does not list is tuned directly
        {"channelNumber": "12.4"},
    ],
)
def test_select_channel_by_code_name_or_number(params: dict[str, Any]) -> None:
    device = tuner()
    effect = run(device, "selectChannel", params)
    # Google defines no channel state: nothing is stored or reported.
    assert effect.state == {}
    assert apply(device, effect).query_states() == {}


@pytest.mark.parametrize(
    "params",
    [{"channelCode": "hbo"}, {"channelCode": "hbo", "channelName": "HBO"}, {"channelNumber": "five"}],
)
def test_a_channel_the_device_lacks_is_no_available_channel(params: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as refused:
        run(tuner(), "selectChannel", params)
    assert refused.value.code == "noAvailableChannel"
    assert refused.value.code in select_errors()


@pytest.mark.parametrize("change", [1, -1, 25, -25, 0])
def test_relative_channel_is_left_to_the_device(change: int) -> None:
    device = tuner()
    assert run(device, "relativeChannel", {"relativeChannelChange": change}).state == {}


def test_return_channel_is_left_to_the_device() -> None:
    device = tuner()
    device = apply(device, run(device, "selectChannel", {"channelCode": "abc1"}))
    assert run(device, "returnChannel").state == {}


@pytest.mark.parametrize(
    ("command", "params"),
    [
        ("selectChannel", {}),
        ("selectChannel", {"channelName": "Fox"}),
        ("selectChannel", {"channelNumber": "2", "channelName": "Fox"}),
        ("relativeChannel", {"relativeChannelChange": 1.5}),
        ("relativeChannel", {}),
        ("returnChannel", {"channelCode": "abc1"}),
    ],
)
def test_malformed_params_are_a_protocol_error(command: str, params: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as refused:
        run(tuner(), command, params)
    assert refused.value.code == "protocolError"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"channelCode": "a"},
        {"channelCode": "a", "channelName": "b", "channelNumber": "1"},
        {"channelNumber": "1"},
        {"channelName": "b"},
        {"channelNumber": "1", "channelName": "b"},
        {"channelCode": 1},
    ],
)
def test_our_select_params_schema_agrees_with_google(params: dict[str, Any]) -> None:
    google = oracle().trait("Channel").commands["action.devices.commands.selectChannel"].params
    assert google is not None
    ours = Channel.commands["action.devices.commands.selectChannel"].params_schema
    assert is_valid(ours, params) == (not oracle().problems(google, params))


def test_a_command_only_tuner_works_the_same() -> None:
    device = tuner(commandOnlyChannels=True)
    assert run(device, "selectChannel", {"channelCode": "ktvu2"}).state == {}


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        ({"availableChannels": [{"key": "a", "names": []}, {"key": "a", "names": ["A"]}]}, "listed twice"),
        ({"availableChannels": [{"key": "a", "names": ["A"], "number": 4}]}, "number"),
        ({"availableChannels": [{"names": ["A"]}]}, "key"),
        ({}, "availableChannels"),
    ],
)
def test_unusable_channel_lists_are_refused_naming_the_trait(attributes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidDevice, match=r"\(Channel\)") as refused:
        register(["Channel"], attributes)
    assert problem in str(refused.value)


def test_a_tuner_without_listed_channels_still_tunes_numbers() -> None:
    device = register(["Channel"], {"availableChannels": []})
    assert run(device, "selectChannel", {"channelNumber": "7"}).state == {}
