"""TransportControl: media playback commands (pause, resume, stop, skip, seek, repeat, shuffle, captions).

A device accepts only the commands its `transportControlSupportedCommands` lists. Google defines no states for
this trait; where the device also has MediaState and reports `playbackState`, pause, resume and stop update it.
"""

from __future__ import annotations

import math

from functions.core import errors
from functions.core.schema import BOOLEAN, STRING, array, enum, integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, command, require_range

# The capability each command needs in transportControlSupportedCommands.
CAPABILITY = {
    "mediaClosedCaptioningOff": "CAPTION_CONTROL",
    "mediaClosedCaptioningOn": "CAPTION_CONTROL",
    "mediaNext": "NEXT",
    "mediaPause": "PAUSE",
    "mediaPrevious": "PREVIOUS",
    "mediaRepeatMode": "SET_REPEAT",
    "mediaResume": "RESUME",
    "mediaSeekRelative": "SEEK_RELATIVE",
    "mediaSeekToPosition": "SEEK_TO_POSITION",
    "mediaShuffle": "SHUFFLE",
    "mediaStop": "STOP",
}
CAPABILITIES = tuple(sorted(set(CAPABILITY.values())))


def _require(ctx: CommandContext) -> None:
    short = ctx.command.rsplit(".", 1)[-1]
    capability = CAPABILITY[short]
    if capability not in (ctx.attributes.get("transportControlSupportedCommands") or ()):
        raise errors.CommandError(
            errors.FUNCTION_NOT_SUPPORTED, f"{short} needs {capability} in transportControlSupportedCommands"
        )


def _playback(ctx: CommandContext, playback_state: str) -> Effect:
    """Records the playback state only where the device reports one (MediaState with supportPlaybackState)."""
    if "playbackState" not in ctx.state:
        return Effect()
    return Effect(state={"playbackState": playback_state})


@register
class TransportControl(Trait):
    name = "TransportControl"
    attributes_schema = obj(
        {"transportControlSupportedCommands": array(enum(*CAPABILITIES), uniqueItems=True)},
        required=("transportControlSupportedCommands",),
    )

    @command("mediaStop")
    def stop(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        return _playback(ctx, "STOPPED")

    @command("mediaPause")
    def pause(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        # Pausing a stopped device leaves it stopped: there is nothing to resume from.
        if ctx.state.get("playbackState") == "STOPPED":
            return Effect()
        return _playback(ctx, "PAUSED")

    @command("mediaResume")
    def resume(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        return _playback(ctx, "PLAYING")

    @command("mediaNext")
    def next_item(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        return Effect()

    @command("mediaPrevious")
    def previous_item(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        return Effect()

    @command("mediaSeekRelative", params=obj({"relativePositionMs": integer()}, required=("relativePositionMs",)))
    def seek_relative(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        # Google defines no position state, so there is no range to clamp to; the device stops at either end.
        return Effect()

    @command("mediaSeekToPosition", params=obj({"absPositionMs": integer()}, required=("absPositionMs",)))
    def seek_to_position(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        # A position before the start of the item does not exist; the item's length is not known here.
        require_range(ctx.params["absPositionMs"], 0, math.inf, "absPositionMs")
        return Effect()

    @command("mediaRepeatMode", params=obj({"isOn": BOOLEAN, "isSingle": BOOLEAN}, required=("isOn",)))
    def repeat_mode(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        return Effect()

    @command("mediaShuffle")
    def shuffle(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        return Effect()

    @command(
        "mediaClosedCaptioningOn",
        params=obj({"closedCaptioningLanguage": STRING, "userQueryLanguage": STRING}),
    )
    def captions_on(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        return Effect()

    @command("mediaClosedCaptioningOff")
    def captions_off(self, ctx: CommandContext) -> Effect:
        _require(ctx)
        return Effect()
