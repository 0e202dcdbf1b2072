"""Dock: sending a device back to its dock."""

from __future__ import annotations

import pytest

from functions.core.device import new_device_document, parse_device
from functions.core.errors import CommandError
from functions.core.traits.base import CommandContext
from functions.core.traits.dock import Dock
from tests.schema_oracle import oracle

DOCUMENT = {
    "type": "action.devices.types.WATERSOFTENER",  # needs no other trait
    "traits": ["action.devices.traits.Dock"],
    "name": {"name": "robot"},
    "willReportState": True,
}


def test_a_new_device_is_not_taken_to_be_docked() -> None:
    device = parse_device("r1", new_device_document("r1", DOCUMENT))
    assert device.query_states() == {"isDocked": False}
    oracle().assert_states(device.trait_names, device.query_states(), "initial Dock")


def test_docking_docks_and_docking_again_is_fine() -> None:
    device = parse_device("r1", new_device_document("r1", DOCUMENT))
    for _ in range(2):
        ctx = CommandContext("r1", "action.devices.commands.Dock", {}, device.attributes, device.state, 0)
        device = device.with_state(Dock().execute(ctx).state)
        assert device.query_states() == {"isDocked": True}
        oracle().assert_states(device.trait_names, device.query_states(), "Dock")


def test_dock_takes_no_params() -> None:
    ctx = CommandContext("r1", "action.devices.commands.Dock", {"where": "kitchen"}, {}, {}, 0)
    with pytest.raises(CommandError) as raised:
        Dock().execute(ctx)
    assert raised.value.code == "protocolError"


def test_google_examples_are_valid_for_us() -> None:
    for example in oracle().examples(oracle().trait("Dock").states):
        assert Dock.state_errors({}, example) == []
    assert Dock.state_errors({}, {"isDocked": "yes"})
