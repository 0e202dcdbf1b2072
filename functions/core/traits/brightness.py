"""Brightness: a light level from 0 to 100 percent, set absolutely or relative to the current level."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.schema import BOOLEAN, integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, clamp, command, require_range

# Google scales "a little" .. "a lot" to a weight of 1..5 and leaves its size to the device; one step of weight
# is taken as a tenth of the scale, so "a lot" (5) moves half way.
PERCENT_PER_WEIGHT = 10
DEFAULT_BRIGHTNESS = 100


@register
class Brightness(Trait):
    name = "Brightness"
    attributes_schema = obj({"commandOnlyBrightness": BOOLEAN})
    states_schema = obj({"brightness": integer(0, 100)})
    command_only_attribute = "commandOnlyBrightness"

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        return {"brightness": DEFAULT_BRIGHTNESS}

    @command("BrightnessAbsolute", params=obj({"brightness": integer()}, required=("brightness",)))
    def absolute(self, ctx: CommandContext) -> dict[str, Any]:
        level = ctx.params["brightness"]
        require_range(level, 0, 100, "brightness")
        return {"brightness": level}

    # Google's schema gives the percent no sign, yet "dim by 20 percent" needs one: a negative percent dims.
    @command(
        "BrightnessRelative",
        params={
            "oneOf": [
                obj({"brightnessRelativePercent": integer(-100, 100)}, required=("brightnessRelativePercent",)),
                obj({"brightnessRelativeWeight": integer(-5, 5)}, required=("brightnessRelativeWeight",)),
            ]
        },
    )
    def relative(self, ctx: CommandContext) -> dict[str, Any]:
        if "brightnessRelativePercent" in ctx.params:
            change = ctx.params["brightnessRelativePercent"]
        else:
            change = ctx.params["brightnessRelativeWeight"] * PERCENT_PER_WEIGHT
        current = ctx.state.get("brightness", DEFAULT_BRIGHTNESS)
        return {"brightness": int(clamp(current + change, 0, 100))}
