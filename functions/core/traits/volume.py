"""Volume: a level from 0 to volumeMaxLevel, set absolutely or in steps, and mute that remembers the level."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, clamp, command, require_range

# Google's documented default for volumeDefaultPercentage.
DEFAULT_PERCENTAGE = 40


def _max_level(attributes: Mapping[str, Any]) -> int:
    return int(attributes["volumeMaxLevel"])


def _can_mute(attributes: Mapping[str, Any]) -> bool:
    return attributes.get("volumeCanMuteAndUnmute") is True


@register
class Volume(Trait):
    name = "Volume"
    attributes_schema = obj(
        {
            "volumeMaxLevel": integer(1),
            "volumeCanMuteAndUnmute": BOOLEAN,
            "volumeDefaultPercentage": integer(0, 100),
            "levelStepSize": integer(1),
            "commandOnlyVolume": BOOLEAN,
        },
        required=("volumeMaxLevel", "volumeCanMuteAndUnmute"),
    )
    # A muted device keeps reporting the level it will return to.
    states_schema = obj({"currentVolume": integer(0), "isMuted": BOOLEAN})
    command_only_attribute = "commandOnlyVolume"

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        percentage = attributes.get("volumeDefaultPercentage", DEFAULT_PERCENTAGE)
        state: dict[str, Any] = {"currentVolume": round(_max_level(attributes) * percentage / 100)}
        if _can_mute(attributes):
            state["isMuted"] = False
        return state

    @command("mute", params=obj({"mute": BOOLEAN}, required=("mute",)))
    def mute(self, ctx: CommandContext) -> dict[str, Any]:
        if not _can_mute(ctx.attributes):
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this device cannot mute and unmute")
        return {"isMuted": ctx.params["mute"]}

    @command("setVolume", params=obj({"volumeLevel": integer()}, required=("volumeLevel",)))
    def set_volume(self, ctx: CommandContext) -> dict[str, Any]:
        level = ctx.params["volumeLevel"]
        require_range(level, 0, _max_level(ctx.attributes), "volumeLevel")
        return self._level(ctx.attributes, level)

    # Google already scales "a bit louder" / "volume up" into steps of the device's levels (levelStepSize is
    # the size it uses for a plain "volume up"), so the steps are levels.
    @command("volumeRelative", params=obj({"relativeSteps": integer()}, required=("relativeSteps",)))
    def relative(self, ctx: CommandContext) -> dict[str, Any]:
        attributes = ctx.attributes
        current = ctx.state.get("currentVolume", self.initial_state(attributes)["currentVolume"])
        return self._level(attributes, int(clamp(current + ctx.params["relativeSteps"], 0, _max_level(attributes))))

    @staticmethod
    def _level(attributes: Mapping[str, Any], level: int) -> dict[str, Any]:
        # Changing the volume of a muted device unmutes it, as remote controls do.
        return {"currentVolume": level, **({"isMuted": False} if _can_mute(attributes) else {})}
