"""MediaState: what a media device reports about its activity and playback; it has no commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.schema import BOOLEAN, enum, obj
from functions.core.traits import register
from functions.core.traits.base import Trait

ACTIVITY_STATES = ("INACTIVE", "STANDBY", "ACTIVE")
PLAYBACK_STATES = ("PAUSED", "PLAYING", "FAST_FORWARDING", "REWINDING", "BUFFERING", "STOPPED")

# Each state is reported only where the device says it can report it.
_SUPPORT = {"activityState": "supportActivityState", "playbackState": "supportPlaybackState"}


@register
class MediaState(Trait):
    name = "MediaState"
    attributes_schema = obj({"supportActivityState": BOOLEAN, "supportPlaybackState": BOOLEAN})
    states_schema = obj({"activityState": enum(*ACTIVITY_STATES), "playbackState": enum(*PLAYBACK_STATES)})

    @classmethod
    def state_keys(cls, attributes: Mapping[str, Any]) -> frozenset[str]:
        return frozenset(key for key, switch in _SUPPORT.items() if attributes.get(switch) is True)

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        # A device that was just registered is idle until its cloud reports otherwise.
        return {"activityState": "INACTIVE", "playbackState": "STOPPED"}
