"""Reboot: devices such as routers that restart as a single action; no attributes and no state."""

from __future__ import annotations

from functions.core.schema import obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, command


@register
class Reboot(Trait):
    name = "Reboot"

    @command("Reboot", params=obj())
    def reboot(self, ctx: CommandContext) -> Effect:
        # Nothing Google sees changes: the device cloud carries out the restart.
        return Effect()
