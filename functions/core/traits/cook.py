"""Cook: start or stop cooking in one of the device's cooking modes, optionally a food preset in a quantity.

States name the current mode and food preset, "NONE" when nothing is selected. A quantity and its unit
are reported only while a food preset cooks with one. Since a command's state changes are merged into the
stored state, a quantity that no longer applies is stored as null, and null is never reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import NOT_SUPPORTED, VALUE_OUT_OF_RANGE, CommandError
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, enum, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, command

NONE = "NONE"  # no cooking mode / no food preset selected
UNKNOWN_FOOD_PRESET = "unknownFoodPreset"  # Google's code for a food the device has no preset for

COOKING_MODES = (
    "UNKNOWN_COOKING_MODE",
    "BAKE",
    "BEAT",
    "BLEND",
    "BOIL",
    "BREW",
    "BROIL",
    "CONVECTION_BAKE",
    "COOK",
    "DEFROST",
    "DEHYDRATE",
    "FERMENT",
    "FRY",
    "GRILL",
    "KNEAD",
    "MICROWAVE",
    "MIX",
    "PRESSURE_COOK",
    "PUREE",
    "ROAST",
    "SAUTE",
    "SLOW_COOK",
    "SOUS_VIDE",
    "STEAM",
    "STEW",
    "STIR",
    "WARM",
    "WHIP",
)
FOOD_UNITS = (
    "UNKNOWN_UNITS",
    "NO_UNITS",
    "CENTIMETERS",
    "CUPS",
    "DECILITERS",
    "FEET",
    "FLUID_OUNCES",
    "GALLONS",
    "GRAMS",
    "INCHES",
    "KILOGRAMS",
    "LITERS",
    "METERS",
    "MILLIGRAMS",
    "MILLILITERS",
    "MILLIMETERS",
    "OUNCES",
    "PINCH",
    "PINTS",
    "PORTION",
    "POUNDS",
    "QUARTS",
    "TABLESPOONS",
    "TEASPOONS",
)

_FOOD_PRESET = obj(
    {
        "food_preset_name": NON_EMPTY_STRING,  # internal name, used in commands and states
        "supported_units": array(enum(*FOOD_UNITS)),
        "food_synonyms": array(obj({"synonym": array(STRING), "lang": NON_EMPTY_STRING}, required=("lang", "synonym"))),
    },
    required=("food_preset_name", "food_synonyms", "supported_units"),
)

_QUANTITY = ("currentFoodQuantity", "currentFoodUnit")
_NO_QUANTITY: dict[str, Any] = dict.fromkeys(_QUANTITY)


def _presets(attributes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(attributes.get("foodPresets") or ())


_PRESET_NAMES = _localized.NamedEntries(name_key="food_preset_name", values_key="food_synonyms", words_key="synonym")


@register
class Cook(Trait):
    name = "Cook"
    attributes_schema = obj(
        {
            "supportedCookingModes": array(enum(*COOKING_MODES), uniqueItems=True),
            "foodPresets": array(_FOOD_PRESET),
        },
        required=("supportedCookingModes",),
    )
    states_schema = obj(
        {
            "currentCookingMode": enum(NONE, *COOKING_MODES),
            "currentFoodPreset": NON_EMPTY_STRING,  # a food_preset_name, or NONE
            # null: no quantity (stored, never reported)
            "currentFoodQuantity": {"type": ["number", "null"], "minimum": 0},
            "currentFoodUnit": {"enum": [*FOOD_UNITS, None]},
        }
    )

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if not problems:
            problems += _PRESET_NAMES.listed_twice(_presets(attributes), "attributes (Cook).foodPresets")
            if any(preset["food_preset_name"] == NONE for preset in _presets(attributes)):
                problems.append(f"attributes (Cook).foodPresets: {NONE!r} means no preset and cannot name one")
        return problems

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        problems = super().state_errors(attributes, state)
        if problems or cls.attribute_errors(attributes):
            return problems  # the device's own rules need valid attributes
        mode = state.get("currentCookingMode")
        if mode is not None and mode != NONE and mode not in attributes["supportedCookingModes"]:
            problems.append(f"state (Cook).currentCookingMode: {mode} is not in supportedCookingModes")
        preset = state.get("currentFoodPreset")
        names = {p["food_preset_name"] for p in _presets(attributes)}
        if preset is not None and preset != NONE and preset not in names:
            problems.append(f"state (Cook).currentFoodPreset: {preset!r} is not one of foodPresets")
        return problems

    @classmethod
    def query_states(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        reported = {k: v for k, v in super().query_states(attributes, state).items() if v is not None}
        if reported.get("currentCookingMode", NONE) == NONE or reported.get("currentFoodPreset", NONE) == NONE:
            # Google: no quantity while nothing cooks, nor without a food preset.
            for key in _QUANTITY:
                reported.pop(key, None)
        return reported

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        state = {"currentCookingMode": NONE}
        if _presets(attributes):
            state["currentFoodPreset"] = NONE
        return state

    @command(
        "Cook",
        params=obj(
            {
                "start": BOOLEAN,
                "cookingMode": NON_EMPTY_STRING,
                "foodPreset": NON_EMPTY_STRING,
                "quantity": {"type": "number"},
                "unit": NON_EMPTY_STRING,
            },
            required=("start",),
        ),
        long_running=True,
    )
    def cook(self, ctx: CommandContext) -> Effect:
        modes: list[str] = list(ctx.attributes.get("supportedCookingModes") or ())
        requested = ctx.params.get("cookingMode")
        if requested is not None and requested not in modes:
            raise CommandError(NOT_SUPPORTED, f"cooking mode {requested} is not one of {modes}")
        if not ctx.params["start"]:
            state: dict[str, Any] = {"currentCookingMode": NONE, **_NO_QUANTITY}
            if _presets(ctx.attributes):
                state["currentFoodPreset"] = NONE
            return Effect(state=state)
        if requested is None:
            if not modes:
                raise CommandError(NOT_SUPPORTED, "the device declares no cooking mode")
            # The device's first mode is its main one (COOK on a rice cooker, BAKE on an oven).
            requested = modes[0]
        state = {"currentCookingMode": requested, **_NO_QUANTITY}
        preset = self._preset(ctx)
        if preset is not None:
            state["currentFoodPreset"] = preset["food_preset_name"]
            state.update(self._quantity(ctx, list(preset.get("supported_units") or ())))
        elif _presets(ctx.attributes):
            state["currentFoodPreset"] = NONE
        return Effect(state=state)

    @staticmethod
    def _preset(ctx: CommandContext) -> Mapping[str, Any] | None:
        wanted = ctx.params.get("foodPreset")
        if wanted is None:
            if "quantity" in ctx.params or "unit" in ctx.params:
                raise CommandError(NOT_SUPPORTED, "a quantity needs a food preset, whose units it is in")
            return None
        return _PRESET_NAMES.require(
            _presets(ctx.attributes),
            str(wanted),
            ctx.language,
            code=UNKNOWN_FOOD_PRESET,
            message=f"no food preset is called {wanted!r}",
        )

    @staticmethod
    def _quantity(ctx: CommandContext, units: list[str]) -> dict[str, Any]:
        quantity, unit = ctx.params.get("quantity"), ctx.params.get("unit")
        if quantity is None:
            if unit is not None:
                raise CommandError(NOT_SUPPORTED, "a unit without a quantity")
            return {}
        if quantity <= 0:
            raise CommandError(VALUE_OUT_OF_RANGE, f"quantity {quantity} is not positive")
        if unit is None:
            if len(units) != 1:
                raise CommandError(NOT_SUPPORTED, f"which unit? the preset supports {units}")
            unit = units[0]
        if unit not in units:
            raise CommandError(NOT_SUPPORTED, f"unit {unit} is not one of the preset's {units}")
        return {"currentFoodQuantity": quantity, "currentFoodUnit": unit}
