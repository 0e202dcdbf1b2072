"""Toggles: named on/off settings of a device (eco mode, child lock, sterilization, ...).

Commands carry a toggle's internal name, which may also be given as one of its synonyms in the device's
language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import NOT_SUPPORTED
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, exclusive, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, command

_TOGGLE = obj(
    {
        "name": NON_EMPTY_STRING,  # internal name, used in commands and states
        "name_values": array(
            obj({"name_synonym": array(STRING), "lang": NON_EMPTY_STRING}, required=("lang", "name_synonym"))
        ),
    },
    required=("name", "name_values"),
)


def _toggles(attributes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(attributes.get("availableToggles") or ())


_TOGGLE_NAMES = _localized.NamedEntries(name_key="name", values_key="name_values", words_key="name_synonym")


@register
class Toggles(Trait):
    name = "Toggles"
    attributes_schema = obj(
        {"availableToggles": array(_TOGGLE, min_items=1), "commandOnlyToggles": BOOLEAN, "queryOnlyToggles": BOOLEAN},
        required=("availableToggles",),
        **exclusive("commandOnlyToggles", "queryOnlyToggles"),
    )
    # Toggle name -> on (true) or off (false).
    states_schema = obj({"currentToggleSettings": {"type": "object", "additionalProperties": BOOLEAN}})
    command_only_attribute = "commandOnlyToggles"
    query_only_attribute = "queryOnlyToggles"

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if not problems:
            problems += _TOGGLE_NAMES.listed_twice(_toggles(attributes), "attributes (Toggles).availableToggles")
        return problems

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        problems = super().state_errors(attributes, state)
        if problems or cls.attribute_errors(attributes) or "currentToggleSettings" not in cls.state_keys(attributes):
            return problems
        names = {toggle["name"] for toggle in _toggles(attributes)}
        for name in state.get("currentToggleSettings") or {}:
            if name not in names:
                problems.append(f"state (Toggles).currentToggleSettings.{name}: not one of availableToggles")
        return problems

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Every toggle off until the device says otherwise."""
        return {"currentToggleSettings": {toggle["name"]: False for toggle in _toggles(attributes)}}

    @command(
        "SetToggles",
        params=obj(
            {
                "updateToggleSettings": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,  # Google sends one toggle per command
                    "additionalProperties": BOOLEAN,
                }
            },
            required=("updateToggleSettings",),
        ),
    )
    def set_toggles(self, ctx: CommandContext) -> Effect:
        current = dict(ctx.state.get("currentToggleSettings") or {})
        for key, on in ctx.params["updateToggleSettings"].items():
            toggle = _TOGGLE_NAMES.require(
                _toggles(ctx.attributes),
                str(key),
                ctx.language,
                code=NOT_SUPPORTED,
                message=f"the device has no toggle {key!r}",
            )
            current[toggle["name"]] = on
        return Effect(state={"currentToggleSettings": current})
