"""What other features call into Report State (re-exported by functions.reporting)."""

from __future__ import annotations

from functions.core.ports import DeviceDocument
from functions.reporting import wiring


def forward_device_write(
    agent_user_id: str,
    device_id: str,
    before: DeviceDocument | None,
    after: DeviceDocument | None,
    event_id: str,
    event_ms: int,
) -> str:
    """For the device-document trigger: reports a state or `online` change written to the document (not one made
    by this pipeline). Raises ReportDeferred when the trigger's event should be retried."""
    return wiring.reporter().device_written(agent_user_id, device_id, before, after, event_id, event_ms)
