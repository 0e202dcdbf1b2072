"""Channel: tune a TV or set-top box to a channel by its code, its name or its number.

Google defines no states for this trait, so the backend does not know which channel is on: relative changes
("channel up") and returning to the previous channel are carried out by the device itself, and the backend
accepts them without recording anything. Keeping a current or last channel in the stored state would put keys
Google does not define into every QUERY answer and Report State.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from functions.core import errors
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, integer, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, command

# Google's selectChannel codes also include noChannelSubscription and channelSwitchFailed, which only the
# device itself can know about.
NO_AVAILABLE_CHANNEL = "noAvailableChannel"

_CHANNEL = obj(
    {"key": NON_EMPTY_STRING, "names": array(STRING), "number": NON_EMPTY_STRING},
    required=("key", "names"),
)

# A channel is asked for by its code (with the name and number Google resolved it from), or by number alone.
_SELECT_PARAMS = {
    "type": "object",
    "oneOf": [
        obj(
            {"channelCode": STRING, "channelName": STRING, "channelNumber": STRING},
            required=("channelCode",),
        ),
        obj({"channelNumber": STRING}, required=("channelNumber",)),
    ],
}

# Channel numbers as broadcasters write them: "11", "12.4" (ATSC major.minor), "4-3".
_CHANNEL_NUMBER = re.compile(r"\d+(?:[.\-]\d+)*")


def _channels(ctx: CommandContext) -> Sequence[Mapping[str, Any]]:
    return ctx.attributes.get("availableChannels") or []


def _by_code_or_name(ctx: CommandContext, code: str, name: str | None) -> Mapping[str, Any] | None:
    for channel in _channels(ctx):
        if channel["key"] == code:
            return channel
    # Names are plain strings here (no languages), so any listed name is accepted.
    for wanted in (name, code):
        if wanted is None:
            continue
        for channel in _channels(ctx):
            if any(_localized.normalized(listed) == _localized.normalized(wanted) for listed in channel["names"]):
                return channel
    return None


@register
class Channel(Trait):
    name = "Channel"
    attributes_schema = obj(
        {"availableChannels": array(_CHANNEL), "commandOnlyChannels": BOOLEAN},
        required=("availableChannels",),
    )
    command_only_attribute = "commandOnlyChannels"

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if problems or "availableChannels" not in attributes:
            return problems
        keys = [channel["key"] for channel in attributes["availableChannels"]]
        return _localized.listed_twice(f"attributes ({cls.name}).availableChannels", keys, "key ")

    @command("selectChannel", params=_SELECT_PARAMS)
    def select(self, ctx: CommandContext) -> Effect:
        code = ctx.params.get("channelCode")
        if code is not None:
            if _by_code_or_name(ctx, code, ctx.params.get("channelName")) is None:
                raise errors.CommandError(NO_AVAILABLE_CHANNEL, f"no channel {code!r} on this device")
            return Effect()
        number = ctx.params["channelNumber"]
        if any(channel.get("number") == number for channel in _channels(ctx)):
            return Effect()
        # Numbers the device does not list are tuned directly, as on a remote control ("channel 3").
        if _CHANNEL_NUMBER.fullmatch(number) is None:
            raise errors.CommandError(NO_AVAILABLE_CHANNEL, f"{number!r} is not a channel number")
        return Effect()

    @command("relativeChannel", params=obj({"relativeChannelChange": integer()}, required=("relativeChannelChange",)))
    def relative(self, ctx: CommandContext) -> Effect:
        # The device steps through its own channel list; there is no stored channel to clamp or wrap.
        return Effect()

    @command("returnChannel")
    def return_to_last(self, ctx: CommandContext) -> Effect:
        # The device remembers its previous channel; see the module docstring for why the backend does not.
        return Effect()
