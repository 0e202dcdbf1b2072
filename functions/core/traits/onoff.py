"""OnOff: binary on and off, for plugs, switches, lights and most appliances."""

from __future__ import annotations

from typing import Any

from functions.core.schema import BOOLEAN, exclusive, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, command


@register
class OnOff(Trait):
    name = "OnOff"
    attributes_schema = obj(
        {"commandOnlyOnOff": BOOLEAN, "queryOnlyOnOff": BOOLEAN},
        **exclusive("commandOnlyOnOff", "queryOnlyOnOff"),
    )
    states_schema = obj({"on": BOOLEAN})
    command_only_attribute = "commandOnlyOnOff"
    query_only_attribute = "queryOnlyOnOff"

    @classmethod
    def initial_state(cls, attributes: Any) -> dict[str, Any]:
        return {"on": False}

    @command("OnOff", params=obj({"on": BOOLEAN}, required=("on",)))
    def set_on(self, ctx: CommandContext) -> dict[str, Any]:
        return {"on": ctx.params["on"]}
