"""Which device writes trigger Request Sync, and the commit time of a change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from functions.core.device import INTERNAL_FIELDS, SYNC_FIELDS
from functions.request_sync.triggers import (
    CHANGED,
    CREATED,
    DELETED,
    SyncReason,
    change_instant_us,
    device_path,
    sync_reason,
)

LAMP: dict[str, Any] = {
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Desk lamp", "nicknames": ["reading light"], "defaultNames": ["L3000"]},
    "willReportState": True,
    "notificationSupportedByAgent": False,
    "roomHint": "Office",
    "deviceInfo": {"manufacturer": "Acme", "model": "L3000", "hwVersion": "1", "swVersion": "2.1"},
    "attributes": {},
    "customData": {"serial": "A-1"},
    "otherDeviceIds": [{"deviceId": "local-1"}],
    "state": {"on": False, "brightness": 40},
    "online": True,
}


def changed(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(LAMP)
    for path, value in changes.items():
        target = document
        *parents, last = path.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    return document


def test_creation_and_deletion_need_a_sync() -> None:
    assert sync_reason(None, LAMP) == SyncReason(CREATED)
    assert sync_reason(LAMP, None) == SyncReason(DELETED)
    assert sync_reason(None, None) is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name__name": "Bedside lamp"}, "name"),
        ({"name__nicknames": ["night light"]}, "name"),
        ({"name__defaultNames": ["L4000"]}, "name"),
        ({"roomHint": "Bedroom"}, "roomHint"),
        ({"type": "action.devices.types.SWITCH"}, "type"),
        ({"traits": ["action.devices.traits.OnOff"]}, "traits"),
        ({"attributes": {"commandOnlyOnOff": True}}, "attributes"),
        ({"willReportState": False}, "willReportState"),
        ({"notificationSupportedByAgent": True}, "notificationSupportedByAgent"),
        ({"deviceInfo__swVersion": "2.2"}, "deviceInfo"),
        ({"customData": {"serial": "A-2"}}, "customData"),
        ({"otherDeviceIds": []}, "otherDeviceIds"),
    ],
)
def test_a_change_google_sees_in_sync_needs_a_sync(changes: dict[str, Any], field: str) -> None:
    assert sync_reason(LAMP, changed(**changes)) == SyncReason(CHANGED, (field,))


def test_a_field_appearing_or_disappearing_counts() -> None:
    without_room = {k: v for k, v in LAMP.items() if k != "roomHint"}
    assert sync_reason(without_room, LAMP) == SyncReason(CHANGED, ("roomHint",))
    assert sync_reason(LAMP, without_room) == SyncReason(CHANGED, ("roomHint",))


def test_every_changed_field_is_named_in_sync_order() -> None:
    reason = sync_reason(LAMP, changed(roomHint="Hall", name__name="Hall lamp", traits=["action.devices.traits.OnOff"]))
    assert reason is not None
    assert reason.fields == ("traits", "name", "roomHint")
    assert reason.describe() == "changed: traits, name, roomHint"


@pytest.mark.parametrize(
    "changes",
    [
        {"state__on": True},
        {"state": {"on": True, "brightness": 90}},
        {"online": False},
        {"updatedAt": 123},
        {"challenges": {"pin": "x"}},
        {"backend": {"kind": "virtual"}},
    ],
)
def test_state_online_and_bookkeeping_changes_need_no_sync(changes: dict[str, Any]) -> None:
    assert sync_reason(LAMP, changed(**changes)) is None


def test_the_rule_follows_the_device_model() -> None:
    # Every SYNC field counts, and no bookkeeping field does: the lists are the device model's own.
    for name in SYNC_FIELDS:
        assert sync_reason(LAMP, {**LAMP, name: "something else"}) is not None
    for name in INTERNAL_FIELDS:
        assert sync_reason(LAMP, {**LAMP, name: "something else"}) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("users/alice/devices/lamp-1", ("alice", "lamp-1")),
        ("projects/p/databases/(default)/documents/users/alice/devices/lamp-1", ("alice", "lamp-1")),
        ("users/alice", None),
        ("users/alice/devices/lamp-1/extra/x", None),
        ("tokens/abc", None),
        ("other/users/alice/devices/lamp-1", None),
    ],
)
def test_device_paths(path: str, expected: tuple[str, str] | None) -> None:
    assert device_path(path) == expected


def test_change_instant_is_the_update_time_or_a_late_enough_bound() -> None:
    received = 1_700_000_002_000_000
    assert change_instant_us(1_700_000_000_123_456, 1_700_000_001_000_000, True, received) == 1_700_000_000_123_456
    assert change_instant_us(None, 1_700_000_000_250_000, False, received) == 1_700_000_000_250_000
    # whole seconds (the emulator): the deletion may have happened anywhere in that second, but not after receipt
    assert change_instant_us(None, 1_700_000_000_000_000, True, received) == 1_700_000_000_999_999
    assert change_instant_us(None, 1_700_000_000_000_000, True, 1_700_000_000_400_000) == 1_700_000_000_400_000
