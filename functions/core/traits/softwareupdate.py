"""SoftwareUpdate: devices such as routers that can be told to update, and may report when they last did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.schema import integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, command


@register
class SoftwareUpdate(Trait):
    name = "SoftwareUpdate"
    states_schema = obj({"lastSoftwareUpdateUnixTimestampSec": integer()})

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        # Google's states schema requires the timestamp although its description calls it optional; 0 (the
        # epoch) stands for "no update known" until the device cloud reports one.
        return {"lastSoftwareUpdateUnixTimestampSec": 0}

    @command("SoftwareUpdate", params=obj())
    def software_update(self, ctx: CommandContext) -> dict[str, Any]:
        return {"lastSoftwareUpdateUnixTimestampSec": ctx.now_ms // 1000}
