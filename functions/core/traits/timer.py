"""Timer: a countdown on the device (oven, microwave, sprinkler) that can be started, adjusted, paused,
resumed and cancelled.

`timerRemainingSec` is -1 when no timer exists. A running timer keeps counting down after the command
that set it, so the backend also stores when it set the remaining time (`timerCountdown`, never reported
to Google): later commands read the time left at `ctx.now_ms`. If the device has since written its own
`timerRemainingSec`, that value is taken as current instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, clamp, command

NO_TIMER = -1
COUNTDOWN = "timerCountdown"  # backend bookkeeping: {"remainingSec", "atMs"} of the running timer, else null

# Google's Timer error codes.
NO_TIMER_EXISTS = "noTimerExists"
TIMER_VALUE_OUT_OF_RANGE = "timerValueOutOfRange"
ABOVE_MAXIMUM = "aboveMaximumTimerDuration"
BELOW_MINIMUM = "belowMinimumTimerDuration"

_COUNTDOWN_SCHEMA = {
    "oneOf": [
        {"type": "null"},
        obj({"remainingSec": integer(0), "atMs": integer(0)}, required=("remainingSec", "atMs")),
    ]
}


def _limit(attributes: Mapping[str, Any]) -> int:
    return int(attributes["maxTimerLimitSec"])


def _command_only(attributes: Mapping[str, Any]) -> bool:
    return attributes.get("commandOnlyTimer") is True


def remaining_at(state: Mapping[str, Any], now_ms: int) -> int:
    """Seconds left on the timer at `now_ms` (rounded up), or -1 when there is none or it has gone off."""
    remaining = state.get("timerRemainingSec", NO_TIMER)
    if not isinstance(remaining, int) or remaining < 0:
        return NO_TIMER
    if state.get("timerPaused") is True:
        return remaining
    countdown = state.get(COUNTDOWN)
    # Only a countdown set together with the stored value is trusted; otherwise the device wrote it since.
    if isinstance(countdown, Mapping) and countdown.get("remainingSec") == remaining:
        left_ms = remaining * 1000 - max(0, now_ms - int(countdown["atMs"]))
        return math.ceil(left_ms / 1000) if left_ms > 0 else NO_TIMER
    return remaining if remaining > 0 else NO_TIMER


def _running(remaining: int, now_ms: int) -> dict[str, Any]:
    return {
        "timerRemainingSec": remaining,
        "timerPaused": False,
        COUNTDOWN: {"remainingSec": remaining, "atMs": now_ms},
    }


def _paused(remaining: int) -> dict[str, Any]:
    return {"timerRemainingSec": remaining, "timerPaused": True, COUNTDOWN: None}


_NONE_LEFT: dict[str, Any] = {"timerRemainingSec": NO_TIMER, "timerPaused": False, COUNTDOWN: None}


@register
class Timer(Trait):
    name = "Timer"
    attributes_schema = obj(
        {"maxTimerLimitSec": integer(1), "commandOnlyTimer": BOOLEAN},
        required=("maxTimerLimitSec",),
    )
    states_schema = obj(
        {
            "timerRemainingSec": integer(NO_TIMER),  # -1: no timer; else seconds left, up to maxTimerLimitSec
            "timerPaused": BOOLEAN,  # a timer exists and is paused
            COUNTDOWN: _COUNTDOWN_SCHEMA,
        }
    )
    command_only_attribute = "commandOnlyTimer"

    @classmethod
    def query_states(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        reported = super().query_states(attributes, state)
        reported.pop(COUNTDOWN, None)
        return reported

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        problems = super().state_errors(attributes, state)
        if problems or _command_only(attributes) or cls.attribute_errors(attributes):
            return problems  # the device's own rules need valid attributes
        remaining = state.get("timerRemainingSec")
        if isinstance(remaining, int) and remaining > _limit(attributes):
            problems.append(f"state (Timer).timerRemainingSec: {remaining} exceeds maxTimerLimitSec")
        if state.get("timerPaused") is True and remaining == NO_TIMER:
            problems.append("state (Timer).timerPaused: no timer exists to be paused")
        return problems

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        return dict(_NONE_LEFT)

    @command("TimerStart", params=obj({"timerTimeSec": integer()}, required=("timerTimeSec",)))
    def start(self, ctx: CommandContext) -> Effect:
        """Starts a new timer, replacing any existing one."""
        seconds = int(ctx.params["timerTimeSec"])
        if seconds < 1:
            raise CommandError(BELOW_MINIMUM, f"a timer lasts at least 1 second, not {seconds}")
        if seconds > _limit(ctx.attributes):
            raise CommandError(ABOVE_MAXIMUM, f"{seconds} s is above maxTimerLimitSec {_limit(ctx.attributes)}")
        return Effect(state=_running(seconds, ctx.now_ms))

    @command("TimerAdjust", params=obj({"timerTimeSec": integer()}, required=("timerTimeSec",)))
    def adjust(self, ctx: CommandContext) -> Effect:
        """Adds (or with a negative value removes) time; the result is kept within 1..maxTimerLimitSec."""
        delta = int(ctx.params["timerTimeSec"])
        limit = _limit(ctx.attributes)
        if abs(delta) > limit:
            raise CommandError(TIMER_VALUE_OUT_OF_RANGE, f"an adjustment lies within ±{limit} s, not {delta}")
        if _command_only(ctx.attributes):
            return Effect()  # the device alone knows its timer
        remaining = self._existing(ctx)
        adjusted = int(clamp(remaining + delta, 1, limit))
        if ctx.state.get("timerPaused") is True:
            return Effect(state=_paused(adjusted))
        return Effect(state=_running(adjusted, ctx.now_ms))

    @command("TimerPause")
    def pause(self, ctx: CommandContext) -> Effect:
        if _command_only(ctx.attributes):
            return Effect()
        return Effect(state=_paused(self._existing(ctx)))

    @command("TimerResume")
    def resume(self, ctx: CommandContext) -> Effect:
        if _command_only(ctx.attributes):
            return Effect()
        remaining = self._existing(ctx)
        if ctx.state.get("timerPaused") is not True:
            return Effect()  # already running: nothing to change, and the countdown must not restart
        return Effect(state=_running(remaining, ctx.now_ms))

    @command("TimerCancel")
    def cancel(self, ctx: CommandContext) -> Effect:
        if _command_only(ctx.attributes):
            return Effect()
        self._existing(ctx)
        return Effect(state=dict(_NONE_LEFT))

    @staticmethod
    def _existing(ctx: CommandContext) -> int:
        """Seconds left on the device's timer now; noTimerExists when there is none (or it has gone off)."""
        remaining = remaining_at(ctx.state, ctx.now_ms)
        if remaining == NO_TIMER:
            raise CommandError(NO_TIMER_EXISTS, "the device has no timer")
        return remaining
