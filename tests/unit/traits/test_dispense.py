"""Dispense: amounts and units, items and presets by name or synonym, generic dispensing, remaining amounts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from functions.core.errors import InvalidDevice
from functions.core.schema import errors as schema_errors
from functions.core.traits.dispense import convert
from tests.schema_oracle import oracle
from tests.unit.traits.appliance_helpers import Harness

DISPENSE = Harness("Dispense")
WATER: dict[str, Any] = {
    "item_name": "water",
    "item_name_synonyms": [{"lang": "en", "synonyms": ["water"]}, {"lang": "de", "synonyms": ["Wasser"]}],
    "supported_units": ["CUPS", "MILLILITERS", "LITERS"],
    "default_portion": {"amount": 2, "unit": "CUPS"},
}
TREATS: dict[str, Any] = {
    "item_name": "treat",
    "item_name_synonyms": [{"lang": "en", "synonyms": ["treats", "dog treat"]}],
    "supported_units": ["NO_UNITS"],
    "default_portion": {"amount": 1, "unit": "NO_UNITS"},
}
PRESETS = [{"preset_name": "cat_bowl", "preset_name_synonyms": [{"lang": "en", "synonyms": ["cat water bowl"]}]}]
COOLER = {"supportedDispenseItems": [WATER], "supportedDispensePresets": PRESETS}
FEEDER = {"supportedDispenseItems": [WATER, TREATS]}


def item(outcome_states: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in outcome_states["dispenseItems"] if entry["itemName"] == name)


def test_new_devices_list_their_items_idle() -> None:
    assert DISPENSE.register(FEEDER).query_states() == {
        "dispenseItems": [
            {"itemName": "water", "isCurrentlyDispensing": False},
            {"itemName": "treat", "isCurrentlyDispensing": False},
        ]
    }


def test_an_amount_of_an_item_is_recorded_as_last_dispensed() -> None:
    outcome = DISPENSE.run(DISPENSE.register(FEEDER), "Dispense", {"item": "water", "amount": 1.5, "unit": "CUPS"})
    assert item(outcome.reported, "water") == {
        "itemName": "water",
        "amountLastDispensed": {"amount": 1.5, "unit": "CUPS"},
        "isCurrentlyDispensing": False,
    }
    assert item(outcome.reported, "treat") == {"itemName": "treat", "isCurrentlyDispensing": False}


def test_the_remaining_amount_goes_down_across_units() -> None:
    state = {"dispenseItems": [{"itemName": "water", "amountRemaining": {"amount": 2, "unit": "LITERS"}}]}
    device = DISPENSE.register(COOLER, state)
    outcome = DISPENSE.run(device, "Dispense", {"amount": 500, "unit": "MILLILITERS"})
    assert item(outcome.reported, "water")["amountRemaining"] == {"amount": 1.5, "unit": "LITERS"}
    cups = DISPENSE.run(outcome.device, "Dispense", {"amount": 1, "unit": "CUPS"})
    assert item(cups.reported, "water")["amountRemaining"]["amount"] == pytest.approx(1.5 - 0.2365882365)


def test_more_than_remains_is_refused() -> None:
    state = {"dispenseItems": [{"itemName": "water", "amountRemaining": {"amount": 300, "unit": "MILLILITERS"}}]}
    device = DISPENSE.register(COOLER, state)
    code = DISPENSE.refused(device, "Dispense", {"amount": 2, "unit": "CUPS"})
    assert code == "dispenseAmountRemainingExceeded"


def test_unit_conversion() -> None:
    assert convert(1, "LITERS", "MILLILITERS") == 1000
    assert convert(16, "OUNCES", "POUNDS") == pytest.approx(1)
    assert convert(1, "CUPS", "GRAMS") is None
    assert convert(3, "NO_UNITS", "NO_UNITS") == 3
    assert convert(3, "PORTION", "NO_UNITS") is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"item": "water", "amount": 1, "unit": "GALLONS"}, "dispenseUnitNotSupported"),
        ({"item": "water", "amount": 0, "unit": "CUPS"}, "dispenseAmountBelowLimit"),
        ({"item": "treat", "amount": 1.5, "unit": "NO_UNITS"}, "dispenseFractionalUnitNotSupported"),
        ({"item": "juice", "amount": 1, "unit": "CUPS"}, "notSupported"),
        ({"amount": 1, "unit": "CUPS"}, "genericDispenseNotSupported"),
        ({}, "genericDispenseNotSupported"),
        ({"presetName": "cat_bowl"}, "notSupported"),
    ],
)
def test_refusals(params: dict[str, Any], code: str) -> None:
    assert DISPENSE.refused(DISPENSE.register(FEEDER), "Dispense", params) == code


def test_an_item_being_dispensed_cannot_be_dispensed_again() -> None:
    device = DISPENSE.register(FEEDER, {"dispenseItems": [{"itemName": "treat", "isCurrentlyDispensing": True}]})
    assert DISPENSE.refused(device, "Dispense", {"item": "treat", "amount": 1, "unit": "NO_UNITS"}) == (
        "deviceCurrentlyDispensing"
    )


@pytest.mark.parametrize(("said", "language"), [("dog treat", "en"), ("Treats", "en-GB"), ("treat", "de")])
def test_items_by_name_or_synonym(said: str, language: str) -> None:
    outcome = DISPENSE.run(
        DISPENSE.register(FEEDER), "Dispense", {"item": said, "amount": 2, "unit": "NO_UNITS"}, language=language
    )
    assert item(outcome.reported, "treat")["amountLastDispensed"] == {"amount": 2, "unit": "NO_UNITS"}


def test_a_synonym_in_another_language_is_not_the_item() -> None:
    params = {"item": "Wasser", "amount": 1, "unit": "CUPS"}
    assert DISPENSE.refused(DISPENSE.register(FEEDER), "Dispense", params) == "notSupported"
    outcome = DISPENSE.run(DISPENSE.register(FEEDER), "Dispense", params, language="de")
    assert item(outcome.reported, "water")["amountLastDispensed"] == {"amount": 1, "unit": "CUPS"}


def test_dispensing_without_parameters_gives_the_default_portion_of_the_only_item() -> None:
    outcome = DISPENSE.run(DISPENSE.register(COOLER), "Dispense", {})
    assert item(outcome.reported, "water")["amountLastDispensed"] == {"amount": 2, "unit": "CUPS"}


def test_presets_by_name_or_synonym_leave_the_amounts_to_the_device() -> None:
    device = DISPENSE.register(COOLER)
    for said in ("cat_bowl", "Cat Water Bowl"):
        outcome = DISPENSE.run(device, "Dispense", {"presetName": said})
        assert outcome.effect.state == {}
    assert DISPENSE.refused(device, "Dispense", {"presetName": "dog_bowl"}) == "notSupported"


@pytest.mark.parametrize(
    "params",
    [
        {"presetName": "cat_bowl", "amount": 1, "unit": "CUPS"},
        {"presetName": "cat_bowl", "item": "water"},
        {"item": "water"},
        {"amount": 1},
        {"unit": "CUPS"},
        {"item": "water", "amount": 1, "unit": "CUPS", "extra": True},
    ],
)
def test_params_in_none_of_googles_three_forms_are_refused(params: dict[str, Any]) -> None:
    google = oracle().trait("Dispense").commands["action.devices.commands.Dispense"].params
    assert google is not None
    assert oracle().problems(google, params), "the case is meant to be invalid for Google too"
    command = DISPENSE.trait.commands["action.devices.commands.Dispense"]
    assert schema_errors(command.params_schema, params)
    assert DISPENSE.refused(DISPENSE.register(COOLER), "Dispense", params) == "protocolError"


def test_attributes_rules() -> None:
    odd = copy.deepcopy(WATER)
    odd["default_portion"] = {"amount": 1, "unit": "GALLONS"}
    with pytest.raises(InvalidDevice, match="default portion of 'water' is in GALLONS"):
        DISPENSE.register({"supportedDispenseItems": [odd]})
    with pytest.raises(InvalidDevice, match="'water' is listed twice"):
        DISPENSE.register({"supportedDispenseItems": [WATER, WATER]})
    with pytest.raises(InvalidDevice, match=r"\(Dispense\)"):
        DISPENSE.register({})


def test_state_of_an_unknown_item_is_refused() -> None:
    with pytest.raises(InvalidDevice, match="'juice' is not an item_name"):
        DISPENSE.register(COOLER, {"dispenseItems": [{"itemName": "juice"}]})
