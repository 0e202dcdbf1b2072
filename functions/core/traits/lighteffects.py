"""LightEffects: timed lighting effects (color loop, sleep, wake) that end on their own or on StopEffect."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import array, enum, integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, command

EFFECTS = ("colorLoop", "sleep", "wake")
# Google bounds every effect's duration to 5 minutes .. 1 hour and defaults it to 30 minutes.
MIN_DURATION_S = 300
MAX_DURATION_S = 3600
DEFAULT_DURATION_S = 1800
DEFAULT_ATTRIBUTE = {
    "colorLoop": "defaultColorLoopDuration",
    "sleep": "defaultSleepDuration",
    "wake": "defaultWakeDuration",
}

ACTIVE = "activeLightEffect"
END = "lightEffectEndUnixTimestampSec"

_DURATION_PARAMS = obj({"duration": integer()})


@register
class LightEffects(Trait):
    name = "LightEffects"
    attributes_schema = obj(
        {
            "supportedEffects": array(enum(*EFFECTS), uniqueItems=True),
            **{key: integer(MIN_DURATION_S, MAX_DURATION_S) for key in DEFAULT_ATTRIBUTE.values()},
        },
        required=("supportedEffects",),
    )
    # Stored: null marks "no effect" (a state merge cannot remove a key); Google is told by leaving both out.
    states_schema = obj(
        {
            ACTIVE: {"oneOf": [enum(*EFFECTS), {"type": "null"}]},
            END: {"type": ["integer", "null"]},
        }
    )

    @classmethod
    def query_states(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in super().query_states(attributes, state).items() if value is not None}

    @command("ColorLoop", params=_DURATION_PARAMS)
    def color_loop(self, ctx: CommandContext) -> dict[str, Any]:
        return self._start(ctx, "colorLoop")

    @command("Sleep", params=_DURATION_PARAMS)
    def sleep(self, ctx: CommandContext) -> dict[str, Any]:
        return self._start(ctx, "sleep")

    @command("Wake", params=_DURATION_PARAMS)
    def wake(self, ctx: CommandContext) -> dict[str, Any]:
        return self._start(ctx, "wake")

    @command("StopEffect")
    def stop(self, ctx: CommandContext) -> dict[str, Any]:
        # Stopping when nothing runs is not an error: the light is already as asked.
        return {ACTIVE: None, END: None}

    @staticmethod
    def _start(ctx: CommandContext, effect: str) -> dict[str, Any]:
        if effect not in (ctx.attributes.get("supportedEffects") or []):
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, f"this light has no {effect} effect")
        duration = ctx.params.get("duration", ctx.attributes.get(DEFAULT_ATTRIBUTE[effect], DEFAULT_DURATION_S))
        if duration < MIN_DURATION_S:
            raise CommandError("belowMinimumLightEffectsDuration", f"{duration} s is under {MIN_DURATION_S} s")
        if duration > MAX_DURATION_S:
            raise CommandError("aboveMaximumLightEffectsDuration", f"{duration} s is over {MAX_DURATION_S} s")
        return {ACTIVE: effect, END: ctx.now_ms // 1000 + duration}
