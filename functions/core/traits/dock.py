"""Dock: self-moving devices (robot vacuums, mowers) that can be sent back to their dock to charge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.schema import BOOLEAN, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, command


@register
class Dock(Trait):
    name = "Dock"
    states_schema = obj({"isDocked": BOOLEAN})

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        # Google expects isDocked in every report; a device is not taken to be docked until it says so.
        return {"isDocked": False}

    @command("Dock", params=obj(), long_running=True)
    def dock(self, ctx: CommandContext) -> dict[str, Any]:
        # Google defines no error for docking a docked device: docking again is simply done.
        return {"isDocked": True}
