"""FanSpeed: named speed settings (optionally ordered), a speed percentage, or both; optionally reversible."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, integer, number, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, clamp, command, require_range

# Without ordered settings, a weight ("a little faster" = 1 .. "a lot" = 5) moves the percentage a tenth each.
PERCENT_PER_WEIGHT = 10.0

_SPEED = obj(
    {
        "speed_name": NON_EMPTY_STRING,
        "speed_values": array(
            obj({"speed_synonym": array(STRING), "lang": NON_EMPTY_STRING}, required=("speed_synonym", "lang"))
        ),
    },
    required=("speed_name", "speed_values"),
)


_SPEED_NAMES = _localized.NamedEntries(name_key="speed_name", values_key="speed_values", words_key="speed_synonym")


def _speeds(attributes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((attributes.get("availableFanSpeeds") or {}).get("speeds") or [])


def _ordered(attributes: Mapping[str, Any]) -> bool:
    return bool((attributes.get("availableFanSpeeds") or {}).get("ordered")) and bool(_speeds(attributes))


def _percent_of(index: int, count: int) -> float:
    """The percentage standing for the index-th of `count` ordered settings (the top one is 100)."""
    return round(100 * (index + 1) / count, 2)


def _index_of(percent: float, count: int) -> int:
    """The ordered setting whose share of the scale holds `percent` (0 is the lowest setting)."""
    return min(count - 1, max(0, math.ceil(percent * count / 100) - 1))


@register
class FanSpeed(Trait):
    name = "FanSpeed"
    attributes_schema = obj(
        {
            "availableFanSpeeds": obj(
                {"speeds": array(_SPEED), "ordered": BOOLEAN},
                required=("speeds", "ordered"),
            ),
            "supportsFanSpeedPercent": BOOLEAN,
            "reversible": BOOLEAN,
            "commandOnlyFanSpeed": BOOLEAN,
        },
        # A fan offers named settings, a percentage, or both.
        anyOf=[{"required": ["availableFanSpeeds"]}, {"required": ["supportsFanSpeedPercent"]}],
    )
    states_schema = obj({"currentFanSpeedSetting": STRING, "currentFanSpeedPercent": number(0, 100)})
    command_only_attribute = "commandOnlyFanSpeed"

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {}
        speeds = _speeds(attributes)
        if speeds:
            state["currentFanSpeedSetting"] = speeds[0]["speed_name"]
        if attributes.get("supportsFanSpeedPercent"):
            state["currentFanSpeedPercent"] = _percent_of(0, len(speeds)) if _ordered(attributes) else 0
        return state

    @command(
        "SetFanSpeed",
        params={
            "oneOf": [
                obj({"fanSpeed": STRING}, required=("fanSpeed",)),
                obj({"fanSpeedPercent": number()}, required=("fanSpeedPercent",)),
            ]
        },
    )
    def set_speed(self, ctx: CommandContext) -> dict[str, Any]:
        if "fanSpeed" in ctx.params:
            return self._to_setting(ctx.attributes, self._find(ctx, ctx.params["fanSpeed"]))
        percent = ctx.params["fanSpeedPercent"]
        self._require_percent(ctx.attributes)
        require_range(percent, 0, 100, "fanSpeedPercent")
        return self._to_percent(ctx.attributes, percent)

    @command(
        "SetFanSpeedRelative",
        params={
            "oneOf": [
                obj({"fanSpeedRelativeWeight": integer(-5, 5)}, required=("fanSpeedRelativeWeight",)),
                obj({"fanSpeedRelativePercent": number(-100, 100)}, required=("fanSpeedRelativePercent",)),
            ]
        },
    )
    def set_relative(self, ctx: CommandContext) -> dict[str, Any]:
        attributes, state = ctx.attributes, ctx.state
        speeds = _speeds(attributes)
        if "fanSpeedRelativeWeight" in ctx.params and _ordered(attributes):
            # With ordered settings a weight counts settings: "a little faster" is the next one up.
            names = [speed["speed_name"] for speed in speeds]
            current = state.get("currentFanSpeedSetting")
            index = names.index(current) if current in names else 0
            target = int(clamp(index + ctx.params["fanSpeedRelativeWeight"], 0, len(names) - 1))
            return self._to_setting(attributes, speeds[target])
        self._require_percent(attributes)
        if "fanSpeedRelativeWeight" in ctx.params:
            change = ctx.params["fanSpeedRelativeWeight"] * PERCENT_PER_WEIGHT
        else:
            change = ctx.params["fanSpeedRelativePercent"]
        current_percent = state.get("currentFanSpeedPercent", 0)
        return self._to_percent(attributes, round(clamp(current_percent + change, 0, 100), 2))

    @command("Reverse")
    def reverse(self, ctx: CommandContext) -> Effect:
        if not ctx.attributes.get("reversible"):
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this fan cannot reverse its direction")
        return Effect()  # Google has no state for the direction: the device cloud carries it out

    # Helpers

    @staticmethod
    def _find(ctx: CommandContext, wanted: str) -> Mapping[str, Any]:
        """A speed setting by its name, or by a synonym in the request's language (case-insensitive)."""
        return _SPEED_NAMES.require(
            _speeds(ctx.attributes),
            wanted,
            ctx.language,
            code=errors.NOT_SUPPORTED,
            message=f"fan speed {wanted!r} is not one of this device's settings",
        )

    @staticmethod
    def _require_percent(attributes: Mapping[str, Any]) -> None:
        if not attributes.get("supportsFanSpeedPercent"):
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this fan is not set by percentage")

    @staticmethod
    def _to_setting(attributes: Mapping[str, Any], speed: Mapping[str, Any]) -> dict[str, Any]:
        """States after choosing a setting; with ordered settings a percentage follows it."""
        state: dict[str, Any] = {"currentFanSpeedSetting": speed["speed_name"]}
        if attributes.get("supportsFanSpeedPercent") and _ordered(attributes):
            names = [s["speed_name"] for s in _speeds(attributes)]
            state["currentFanSpeedPercent"] = _percent_of(names.index(speed["speed_name"]), len(names))
        return state

    @staticmethod
    def _to_percent(attributes: Mapping[str, Any], percent: float) -> dict[str, Any]:
        """States after choosing a percentage; with ordered settings the setting follows it."""
        state: dict[str, Any] = {"currentFanSpeedPercent": percent}
        if _ordered(attributes):
            speeds = _speeds(attributes)
            state["currentFanSpeedSetting"] = speeds[_index_of(percent, len(speeds))]["speed_name"]
        return state
