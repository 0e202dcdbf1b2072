"""SoftwareUpdate: the update time is the command time, in seconds."""

from __future__ import annotations

from functions.core.device import new_device_document, parse_device
from functions.core.traits.base import CommandContext
from functions.core.traits.softwareupdate import SoftwareUpdate
from tests.schema_oracle import oracle

DOCUMENT = {
    "type": "action.devices.types.ROUTER",
    "traits": ["action.devices.traits.NetworkControl", "action.devices.traits.SoftwareUpdate"],
    "name": {"name": "router"},
    "willReportState": True,
}


def test_a_new_device_reports_no_known_update() -> None:
    device = parse_device("r1", new_device_document("r1", DOCUMENT))
    assert SoftwareUpdate.query_states(device.attributes, device.state) == {"lastSoftwareUpdateUnixTimestampSec": 0}
    oracle().assert_states(device.trait_names, device.query_states(), "initial SoftwareUpdate")


def test_updating_records_the_command_time_in_whole_seconds() -> None:
    device = parse_device("r1", new_device_document("r1", DOCUMENT))
    ctx = CommandContext("r1", "action.devices.commands.SoftwareUpdate", {}, {}, device.state, 1_700_000_123_987)
    updated = device.with_state(SoftwareUpdate().execute(ctx).state)
    assert updated.state["lastSoftwareUpdateUnixTimestampSec"] == 1_700_000_123
    oracle().assert_states(updated.trait_names, updated.query_states(), "SoftwareUpdate")


def test_a_timestamp_must_be_whole_seconds() -> None:
    assert SoftwareUpdate.state_errors({}, {"lastSoftwareUpdateUnixTimestampSec": 1.5})
    for example in oracle().examples(oracle().trait("SoftwareUpdate").states):
        assert SoftwareUpdate.state_errors({}, example) == []
