"""Dispense: dispense an amount of an item (water, pet food, treats), a named preset, or the default portion.

Each item's state tells how much was dispensed last and, where the device reports it, how much remains.
Dispensing is modelled as completing within the command; the remaining amount goes down by the amount
dispensed, converted between units of the same kind (volume, mass, length) where needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import NOT_SUPPORTED, CommandError
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, enum, integer, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, command

# Google's Dispense error codes.
AMOUNT_BELOW_LIMIT = "dispenseAmountBelowLimit"
AMOUNT_REMAINING_EXCEEDED = "dispenseAmountRemainingExceeded"
FRACTIONAL_UNIT_NOT_SUPPORTED = "dispenseFractionalUnitNotSupported"
UNIT_NOT_SUPPORTED = "dispenseUnitNotSupported"
CURRENTLY_DISPENSING = "deviceCurrentlyDispensing"
GENERIC_DISPENSE_NOT_SUPPORTED = "genericDispenseNotSupported"

UNITS = (
    "CENTIMETERS",
    "CUPS",
    "DECILITERS",
    "FLUID_OUNCES",
    "GALLONS",
    "GRAMS",
    "KILOGRAMS",
    "LITERS",
    "MILLIGRAMS",
    "MILLILITERS",
    "MILLIMETERS",
    "NO_UNITS",
    "OUNCES",
    "PINCH",
    "PINTS",
    "PORTION",
    "POUNDS",
    "QUARTS",
    "TABLESPOONS",
    "TEASPOONS",
)
# Units that count whole things: half a treat or half a portion cannot be dispensed.
COUNTED_UNITS = frozenset({"NO_UNITS", "PORTION", "PINCH"})

# Size of each unit in the base unit of its kind (millilitres, milligrams, millimetres), US customary measures.
_SIZES: dict[str, tuple[str, float]] = {
    "MILLILITERS": ("volume", 1.0),
    "DECILITERS": ("volume", 100.0),
    "LITERS": ("volume", 1000.0),
    "TEASPOONS": ("volume", 4.92892159375),
    "TABLESPOONS": ("volume", 14.78676478125),
    "FLUID_OUNCES": ("volume", 29.5735295625),
    "CUPS": ("volume", 236.5882365),
    "PINTS": ("volume", 473.176473),
    "QUARTS": ("volume", 946.352946),
    "GALLONS": ("volume", 3785.411784),
    "MILLIGRAMS": ("mass", 1.0),
    "GRAMS": ("mass", 1000.0),
    "KILOGRAMS": ("mass", 1_000_000.0),
    "OUNCES": ("mass", 28349.523125),
    "POUNDS": ("mass", 453592.37),
    "MILLIMETERS": ("length", 1.0),
    "CENTIMETERS": ("length", 10.0),
}


def convert(amount: float, unit: str, into: str) -> float | None:
    """`amount` of `unit` expressed in `into`; None when the two units measure different things."""
    if unit == into:
        return amount
    source, target = _SIZES.get(unit), _SIZES.get(into)
    if source is None or target is None or source[0] != target[0]:
        return None
    return amount * source[1] / target[1]


def _synonyms(words_key: str = "synonyms") -> dict[str, Any]:
    return array(obj({words_key: array(STRING), "lang": NON_EMPTY_STRING}, required=("lang", words_key)))


_ITEM = obj(
    {
        "item_name": NON_EMPTY_STRING,  # internal name, used in commands and states
        "item_name_synonyms": _synonyms(),  # the first synonym of each language is the plural form
        "supported_units": array(enum(*UNITS), min_items=1),
        "default_portion": obj({"amount": integer(), "unit": enum(*UNITS)}, required=("amount", "unit")),
    },
    required=("default_portion", "item_name", "item_name_synonyms", "supported_units"),
)
_PRESET = obj(
    {"preset_name": NON_EMPTY_STRING, "preset_name_synonyms": _synonyms()},
    required=("preset_name", "preset_name_synonyms"),
)
_AMOUNT = obj({"amount": {"type": "number", "minimum": 0}, "unit": enum(*UNITS)}, required=("amount", "unit"))
_ITEM_STATE = obj(
    {
        "itemName": NON_EMPTY_STRING,
        "amountRemaining": _AMOUNT,  # what is left, or will be once the current dispensing ends
        "amountLastDispensed": _AMOUNT,  # the last completed dispensing
        "isCurrentlyDispensing": BOOLEAN,
    },
    required=("itemName",),
)

_BY_AMOUNT = ("item", "amount", "unit")


def _items(attributes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(attributes.get("supportedDispenseItems") or ())


_ITEM_NAMES = _localized.NamedEntries(name_key="item_name", values_key="item_name_synonyms", words_key="synonyms")
_PRESET_NAMES = _localized.NamedEntries(name_key="preset_name", values_key="preset_name_synonyms", words_key="synonyms")


@register
class Dispense(Trait):
    name = "Dispense"
    attributes_schema = obj(
        {"supportedDispenseItems": array(_ITEM), "supportedDispensePresets": array(_PRESET)},
        minProperties=1,  # a dispenser dispenses items, presets, or both
    )
    states_schema = obj({"dispenseItems": array(_ITEM_STATE)})

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if problems:
            return problems
        for item in _items(attributes):
            portion = item["default_portion"]
            if portion["unit"] not in item["supported_units"]:
                problems.append(
                    f"attributes (Dispense).supportedDispenseItems: the default portion of {item['item_name']!r} "
                    f"is in {portion['unit']}, not one of its supported_units"
                )
        problems += _ITEM_NAMES.listed_twice(_items(attributes), "attributes (Dispense).supportedDispenseItems")
        problems += _PRESET_NAMES.listed_twice(
            attributes.get("supportedDispensePresets") or (), "attributes (Dispense).supportedDispensePresets"
        )
        return problems

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        problems = super().state_errors(attributes, state)
        if problems or cls.attribute_errors(attributes):
            return problems  # the device's own rules need valid attributes
        known = {item["item_name"] for item in _items(attributes)}
        for index, entry in enumerate(state.get("dispenseItems") or ()):
            if entry["itemName"] not in known:
                problems.append(
                    f"state (Dispense).dispenseItems.{index}.itemName: {entry['itemName']!r} is not an item_name"
                )
        return problems

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        items = [{"itemName": item["item_name"], "isCurrentlyDispensing": False} for item in _items(attributes)]
        return {"dispenseItems": items}

    @command(
        "Dispense",
        params=obj(
            {
                "item": NON_EMPTY_STRING,
                "amount": {"type": "number"},
                "unit": NON_EMPTY_STRING,
                "presetName": NON_EMPTY_STRING,
            },
            # Three forms: an amount in a unit (of an item), a preset, or nothing at all.
            dependencies={
                "item": ["amount", "unit"],
                "amount": ["unit"],
                "unit": ["amount"],
                "presetName": {
                    "not": {
                        "anyOf": [{"required": [key]} for key in _BY_AMOUNT],
                        "description": "a preset is dispensed on its own, without item, amount or unit",
                    }
                },
            },
        ),
        long_running=True,
    )
    def dispense(self, ctx: CommandContext) -> Effect:
        if "presetName" in ctx.params:
            return self._preset(ctx)
        if "amount" in ctx.params:
            item = self._item(ctx)
            return self._amount(ctx, item, float(ctx.params["amount"]), str(ctx.params["unit"]))
        # "Dispense": the default portion, as long as it is clear which item is meant.
        items = _items(ctx.attributes)
        if len(items) != 1:
            raise CommandError(GENERIC_DISPENSE_NOT_SUPPORTED, "say which item or preset to dispense")
        portion = items[0]["default_portion"]
        return self._amount(ctx, items[0], float(portion["amount"]), str(portion["unit"]))

    @staticmethod
    def _preset(ctx: CommandContext) -> Effect:
        wanted = str(ctx.params["presetName"])
        _PRESET_NAMES.require(
            ctx.attributes.get("supportedDispensePresets") or (),
            wanted,
            ctx.language,
            code=NOT_SUPPORTED,
            message=f"no dispense preset is called {wanted!r}",
        )
        # A preset says nothing about which item or how much: the device reports that itself.
        return Effect()

    @staticmethod
    def _item(ctx: CommandContext) -> Mapping[str, Any]:
        items = _items(ctx.attributes)
        wanted = ctx.params.get("item")
        if wanted is None:
            if len(items) != 1:
                raise CommandError(GENERIC_DISPENSE_NOT_SUPPORTED, "say which item to dispense")
            return items[0]
        return _ITEM_NAMES.require(
            items, str(wanted), ctx.language, code=NOT_SUPPORTED, message=f"the device does not dispense {wanted!r}"
        )

    @staticmethod
    def _amount(ctx: CommandContext, item: Mapping[str, Any], amount: float, unit: str) -> Effect:
        name = str(item["item_name"])
        if unit not in item["supported_units"]:
            raise CommandError(UNIT_NOT_SUPPORTED, f"{name} is not dispensed in {unit}")
        if amount <= 0:
            raise CommandError(AMOUNT_BELOW_LIMIT, f"cannot dispense {amount} {unit}")
        if unit in COUNTED_UNITS and amount != int(amount):
            raise CommandError(FRACTIONAL_UNIT_NOT_SUPPORTED, f"{unit} counts whole things, not {amount}")
        entries = [dict(entry) for entry in ctx.state.get("dispenseItems") or ()]
        entry = next((e for e in entries if e.get("itemName") == name), None)
        if entry is None:
            entry = {"itemName": name}
            entries.append(entry)
        if entry.get("isCurrentlyDispensing") is True:
            raise CommandError(CURRENTLY_DISPENSING, f"{name} is being dispensed")
        dispensed = int(amount) if amount == int(amount) else amount
        remaining = entry.get("amountRemaining")
        if isinstance(remaining, Mapping):
            taken = convert(amount, unit, str(remaining["unit"]))
            if taken is not None:
                left = float(remaining["amount"]) - taken
                if left < -1e-9:
                    raise CommandError(
                        AMOUNT_REMAINING_EXCEEDED, f"only {remaining['amount']} {remaining['unit']} of {name} left"
                    )
                entry["amountRemaining"] = {"amount": round(max(left, 0.0), 6), "unit": remaining["unit"]}
        entry["amountLastDispensed"] = {"amount": dispensed, "unit": unit}
        entry["isCurrentlyDispensing"] = False
        return Effect(state={"dispenseItems": entries})
