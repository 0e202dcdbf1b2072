"""Modes: named modes of a device (load size, water temperature, ...), each set to one of its settings.

Commands carry a mode's internal name and a setting's internal name; either may also be given as one of its
synonyms in the device's language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import NOT_SUPPORTED
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, exclusive, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, command

_SETTING = obj(
    {
        "setting_name": NON_EMPTY_STRING,  # internal name, used in commands and states
        "setting_values": array(
            obj({"setting_synonym": array(STRING), "lang": NON_EMPTY_STRING}, required=("lang", "setting_synonym"))
        ),
    },
    required=("setting_name", "setting_values"),
)
_MODE = obj(
    {
        "name": NON_EMPTY_STRING,  # internal name, used in commands and states
        "name_values": array(
            obj(
                {"name_synonym": array(STRING, uniqueItems=True), "lang": NON_EMPTY_STRING},
                required=("lang", "name_synonym"),
            )
        ),
        "settings": array(_SETTING, min_items=2),
        "ordered": BOOLEAN,  # the settings are listed in increasing order ("increase the load size")
    },
    required=("name", "name_values", "settings"),
)


def _modes(attributes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(attributes.get("availableModes") or ())


_MODE_NAMES = _localized.NamedEntries(name_key="name", values_key="name_values", words_key="name_synonym")
_SETTING_NAMES = _localized.NamedEntries(
    name_key="setting_name", values_key="setting_values", words_key="setting_synonym"
)


@register
class Modes(Trait):
    name = "Modes"
    attributes_schema = obj(
        {"availableModes": array(_MODE, min_items=1), "commandOnlyModes": BOOLEAN, "queryOnlyModes": BOOLEAN},
        required=("availableModes",),
        **exclusive("commandOnlyModes", "queryOnlyModes"),
    )
    # Mode name -> setting name.
    states_schema = obj({"currentModeSettings": {"type": "object", "additionalProperties": NON_EMPTY_STRING}})
    command_only_attribute = "commandOnlyModes"
    query_only_attribute = "queryOnlyModes"

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if problems:
            return problems
        problems += _MODE_NAMES.listed_twice(_modes(attributes), "attributes (Modes).availableModes", "mode ")
        for mode in _modes(attributes):
            for name in _localized.repeated(setting["setting_name"] for setting in mode["settings"]):
                problems.append(f"attributes (Modes).availableModes: {mode['name']!r} lists setting {name!r} twice")
        return problems

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        problems = super().state_errors(attributes, state)
        if problems or cls.attribute_errors(attributes) or "currentModeSettings" not in cls.state_keys(attributes):
            return problems
        modes = {mode["name"]: mode for mode in _modes(attributes)}
        for name, setting in (state.get("currentModeSettings") or {}).items():
            where = f"state (Modes).currentModeSettings.{name}"
            if name not in modes:
                problems.append(f"{where}: {name!r} is not one of availableModes")
            elif setting not in {s["setting_name"] for s in modes[name]["settings"]}:
                problems.append(f"{where}: {setting!r} is not a setting of {name!r}")
        return problems

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Each mode at its first setting (the lowest, for ordered modes) until the device says otherwise."""
        first = {mode["name"]: mode["settings"][0]["setting_name"] for mode in _modes(attributes)}
        return {"currentModeSettings": first}

    @command(
        "SetModes",
        params=obj(
            {
                "updateModeSettings": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,  # Google sends one mode per command
                    "additionalProperties": NON_EMPTY_STRING,
                }
            },
            required=("updateModeSettings",),
        ),
    )
    def set_modes(self, ctx: CommandContext) -> Effect:
        current = dict(ctx.state.get("currentModeSettings") or {})
        for mode_key, setting_key in ctx.params["updateModeSettings"].items():
            mode = _MODE_NAMES.require(
                _modes(ctx.attributes),
                str(mode_key),
                ctx.language,
                code=NOT_SUPPORTED,
                message=f"the device has no mode {mode_key!r}",
            )
            setting = _SETTING_NAMES.require(
                mode["settings"],
                str(setting_key),
                ctx.language,
                code=NOT_SUPPORTED,
                message=f"mode {mode['name']!r} has no setting {setting_key!r}",
            )
            current[mode["name"]] = setting["setting_name"]
        return Effect(state={"currentModeSettings": current})
