"""Which device-document writes Google must hear about through Request Sync.

Google learns a device's definition only from SYNC: its existence, `name` (name, nicknames, defaultNames),
`roomHint`, `type`, `traits`, `attributes`, `willReportState`, `notificationSupportedByAgent`, `deviceInfo`,
`customData` and `otherDeviceIds` (device.SYNC_FIELDS). A write that changes none of them (state, `online`, the
backend's bookkeeping in device.INTERNAL_FIELDS) needs no Request Sync: state travels by Report State.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.device import SYNC_FIELDS

CREATED = "created"
DELETED = "deleted"
CHANGED = "changed"

# users/{agentUserId}/devices/{deviceId}, possibly behind projects/P/databases/D/documents/
_DEVICE_PATH = re.compile(r"(?:^|/documents/)users/(?P<user>[^/]+)/devices/(?P<device>[^/]+)$")


@dataclass(frozen=True)
class SyncReason:
    kind: str  # created | deleted | changed
    fields: tuple[str, ...] = ()  # the SYNC fields that changed (for `changed`)

    def describe(self) -> str:
        return self.kind if not self.fields else f"{self.kind}: {', '.join(self.fields)}"


def sync_reason(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> SyncReason | None:
    """Why this write needs a Request Sync, or None if Google's view of the device is unchanged."""
    if before is None and after is None:
        return None
    if before is None:
        return SyncReason(CREATED)
    if after is None:
        return SyncReason(DELETED)
    changed = tuple(name for name in SYNC_FIELDS if before.get(name) != after.get(name))
    return SyncReason(CHANGED, changed) if changed else None


def device_path(document: str) -> tuple[str, str] | None:
    """(agentUserId, deviceId) of a device document's path (relative or full resource name), else None."""
    match = _DEVICE_PATH.search(document)
    return (match["user"], match["device"]) if match else None


def change_instant_us(
    after_update_us: int | None, event_time_us: int, event_time_whole_seconds: bool, received_us: int
) -> int:
    """The commit time of the write, in microseconds since the epoch, or a bound that is never too early.

    A created or updated document carries its update time, which is the commit time. A deletion carries none;
    its event time is the commit time where it has sub-second precision (Eventarc). The Firestore emulator gives
    only whole seconds, of a moment at or after the commit; the end of that second, or the moment the event was
    received if that is earlier, is then the bound. A bound too late costs at most one more requestSync; one too
    early could leave the deletion unsynced.
    """
    if after_update_us is not None:
        return after_update_us
    if event_time_whole_seconds:
        return min(event_time_us + 999_999, received_us)
    return event_time_us
