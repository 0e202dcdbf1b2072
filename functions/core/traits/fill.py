"""Fill: fill or drain a device (bathtub, tank), optionally to one of its named levels or to a percentage.

Without a level or percentage, filling goes to the default level: the last listed, which is the fullest
when the levels are ordered. Draining completely leaves no current level; since a command's state changes
are merged into the stored state, that is stored as null, which is never reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from functions.core.errors import NOT_SUPPORTED, CommandError
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, number, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, command

_LEVEL = obj(
    {
        "level_name": NON_EMPTY_STRING,  # internal name, used in commands and states
        "level_values": array(
            obj({"level_synonym": array(STRING), "lang": NON_EMPTY_STRING}, required=("lang", "level_synonym"))
        ),
    },
    required=("level_name", "level_values"),
)


def _levels(attributes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((attributes.get("availableFillLevels") or {}).get("levels") or ())


_LEVEL_NAMES = _localized.NamedEntries(name_key="level_name", values_key="level_values", words_key="level_synonym")


def _ordered(attributes: Mapping[str, Any]) -> bool:
    return (attributes.get("availableFillLevels") or {}).get("ordered") is True


def _percent_supported(attributes: Mapping[str, Any]) -> bool:
    return (attributes.get("availableFillLevels") or {}).get("supportsFillPercent") is True


@register
class Fill(Trait):
    name = "Fill"
    attributes_schema = obj(
        {
            "availableFillLevels": obj(
                {
                    "levels": array(_LEVEL, min_items=1),
                    "ordered": BOOLEAN,  # the levels are listed from the lowest to the highest
                    "supportsFillPercent": BOOLEAN,
                },
                required=("levels", "ordered"),
            )
        }
    )
    states_schema = obj(
        {
            "isFilled": BOOLEAN,  # filled to any level; false only when completely drained
            "currentFillLevel": {"type": ["string", "null"], "minLength": 1},  # a level_name; null when drained
            "currentFillPercent": number(0, 100),
        }
    )

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if not problems:
            problems += _LEVEL_NAMES.listed_twice(_levels(attributes), "attributes (Fill).availableFillLevels.levels")
        return problems

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        problems = super().state_errors(attributes, state)
        if problems or cls.attribute_errors(attributes):
            return problems  # the device's own rules need valid attributes
        level = state.get("currentFillLevel")
        if level is not None and level not in {entry["level_name"] for entry in _levels(attributes)}:
            problems.append(f"state (Fill).currentFillLevel: {level!r} is not one of availableFillLevels")
        return problems

    @classmethod
    def query_states(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in super().query_states(attributes, state).items() if v is not None}

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        return cls._drained(attributes)

    @command(
        "Fill",
        params=obj(
            {"fill": BOOLEAN, "fillLevel": NON_EMPTY_STRING, "fillPercent": number(0, 100)},
            required=("fill",),
        ),
    )
    def fill(self, ctx: CommandContext) -> Effect:
        """`fill` true fills, false drains; a level or percentage given is the level to reach either way."""
        levels = _levels(ctx.attributes)
        if "fillPercent" in ctx.params:
            if not _percent_supported(ctx.attributes):
                raise CommandError(NOT_SUPPORTED, "the device does not fill to a percentage")
            return Effect(state=self._to_percent(ctx.attributes, ctx.params["fillPercent"]))
        if "fillLevel" in ctx.params:
            wanted = str(ctx.params["fillLevel"])
            level = _LEVEL_NAMES.require(
                levels, wanted, ctx.language, code=NOT_SUPPORTED, message=f"the device has no fill level {wanted!r}"
            )
            return Effect(state=self._to_level(ctx.attributes, levels.index(level)))
        if not ctx.params["fill"]:
            return Effect(state=self._drained(ctx.attributes))
        if levels:
            return Effect(state=self._to_level(ctx.attributes, len(levels) - 1))
        return Effect(state={"isFilled": True})

    @staticmethod
    def _drained(attributes: Mapping[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"isFilled": False}
        if _levels(attributes):
            state["currentFillLevel"] = None
        if _percent_supported(attributes):
            state["currentFillPercent"] = 0
        return state

    @staticmethod
    def _to_level(attributes: Mapping[str, Any], index: int) -> dict[str, Any]:
        levels = _levels(attributes)
        state: dict[str, Any] = {"isFilled": True, "currentFillLevel": levels[index]["level_name"]}
        if _percent_supported(attributes) and _ordered(attributes):
            # Ordered levels split the capacity evenly: the last one is full.
            state["currentFillPercent"] = round(100 * (index + 1) / len(levels), 2)
        return state

    @classmethod
    def _to_percent(cls, attributes: Mapping[str, Any], percent: float) -> dict[str, Any]:
        if percent <= 0:
            return cls._drained(attributes)
        state: dict[str, Any] = {"isFilled": True, "currentFillPercent": percent}
        levels = _levels(attributes)
        if _ordered(attributes):
            # The level reached: each ordered level covers an equal share of the capacity.
            index = min(len(levels), math.ceil(percent * len(levels) / 100)) - 1
            state["currentFillLevel"] = levels[index]["level_name"]
        return state
