"""Locator: devices that can be found by making them ring, beep or flash; they have no state."""

from __future__ import annotations

from functions.core.schema import BOOLEAN, STRING, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, command


@register
class Locator(Trait):
    name = "Locator"

    @command("Locate", params=obj({"silence": BOOLEAN, "lang": STRING}))
    def locate(self, ctx: CommandContext) -> Effect:
        # `silence` stops an alert in progress, so no alert is generated. `lang` is for localized location
        # strings, which a device cloud would add; this backend answers none.
        silence = ctx.params.get("silence", False)
        return Effect(results={"generatedAlert": not silence})
