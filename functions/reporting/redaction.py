"""What may be logged of a reportStateAndNotification body: all of it but the follow-up tokens (Google's secrets,
which the pipeline sends but never logs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def loggable(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request body without follow-up tokens (Google's, but never logged)."""
    payload = body.get("payload") or {}
    devices = dict(payload.get("devices") or {})
    notifications = devices.get("notifications")
    if isinstance(notifications, Mapping):
        devices["notifications"] = {
            device_id: {
                trait: (
                    {
                        **value,
                        "followUpResponse": {
                            k: v for k, v in value["followUpResponse"].items() if k != "followUpToken"
                        },
                    }
                    if isinstance(value, Mapping) and isinstance(value.get("followUpResponse"), Mapping)
                    else value
                )
                for trait, value in (by_trait or {}).items()
            }
            for device_id, by_trait in notifications.items()
        }
    return {**body, "payload": {**payload, "devices": devices}}
