"""Cook: modes, food presets by name or synonym, quantities and units, stopping."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import InvalidDevice
from tests.unit.traits.appliance_helpers import Harness

COOK = Harness("Cook")
OVEN = {"supportedCookingModes": ["BAKE", "BROIL"]}
RICE_COOKER: dict[str, Any] = {
    "supportedCookingModes": ["COOK", "WARM"],
    "foodPresets": [
        {
            "food_preset_name": "white_rice",
            "supported_units": ["CUPS"],
            "food_synonyms": [{"synonym": ["White Rice", "Rice"], "lang": "en"}, {"synonym": ["riz"], "lang": "fr"}],
        },
        {
            "food_preset_name": "porridge",
            "supported_units": ["CUPS", "GRAMS"],
            "food_synonyms": [{"synonym": ["porridge", "oatmeal"], "lang": "en"}],
        },
    ],
}


def test_new_devices_cook_nothing() -> None:
    assert COOK.register(OVEN).query_states() == {"currentCookingMode": "NONE"}
    assert COOK.register(RICE_COOKER).query_states() == {"currentCookingMode": "NONE", "currentFoodPreset": "NONE"}


def test_start_and_stop_a_mode() -> None:
    baking = COOK.run(COOK.register(OVEN), "Cook", {"start": True, "cookingMode": "BAKE"})
    assert baking.reported == {"currentCookingMode": "BAKE"}
    stopped = COOK.run(baking.device, "Cook", {"start": False, "cookingMode": "BAKE"})
    assert stopped.reported == {"currentCookingMode": "NONE"}


def test_a_mode_the_device_lacks_is_not_supported() -> None:
    assert COOK.refused(COOK.register(OVEN), "Cook", {"start": True, "cookingMode": "STEAM"}) == "notSupported"
    assert COOK.refused(COOK.register(OVEN), "Cook", {"start": False, "cookingMode": "STEAM"}) == "notSupported"


def test_without_a_mode_the_devices_first_mode_is_used() -> None:
    outcome = COOK.run(COOK.register(RICE_COOKER), "Cook", {"start": True, "foodPreset": "white_rice"})
    assert outcome.reported == {"currentCookingMode": "COOK", "currentFoodPreset": "white_rice"}


def test_a_preset_with_quantity_and_unit() -> None:
    params = {"start": True, "cookingMode": "COOK", "foodPreset": "white_rice", "quantity": 2, "unit": "CUPS"}
    outcome = COOK.run(COOK.register(RICE_COOKER), "Cook", params)
    assert outcome.reported == {
        "currentCookingMode": "COOK",
        "currentFoodPreset": "white_rice",
        "currentFoodQuantity": 2,
        "currentFoodUnit": "CUPS",
    }


@pytest.mark.parametrize(("said", "language"), [("Rice", "en"), ("white  rice", "en-US"), ("riz", "fr")])
def test_a_preset_by_synonym_in_the_devices_language(said: str, language: str) -> None:
    outcome = COOK.run(COOK.register(RICE_COOKER), "Cook", {"start": True, "foodPreset": said}, language=language)
    assert outcome.reported["currentFoodPreset"] == "white_rice"


@pytest.mark.parametrize(("said", "language"), [("riz", "en"), ("Rice", "fr"), ("brown_rice", "en")])
def test_an_unknown_food_is_an_unknown_preset(said: str, language: str) -> None:
    code = COOK.refused(COOK.register(RICE_COOKER), "Cook", {"start": True, "foodPreset": said}, language=language)
    assert code == "unknownFoodPreset"


def test_presets_on_a_device_without_any() -> None:
    assert COOK.refused(COOK.register(OVEN), "Cook", {"start": True, "foodPreset": "pizza"}) == "unknownFoodPreset"


def test_quantity_rules() -> None:
    device = COOK.register(RICE_COOKER)
    # The preset's only unit is implied.
    implied = COOK.run(device, "Cook", {"start": True, "foodPreset": "white_rice", "quantity": 3})
    assert implied.reported["currentFoodUnit"] == "CUPS"
    assert COOK.refused(device, "Cook", {"start": True, "foodPreset": "porridge", "quantity": 3}) == "notSupported"
    wrong_unit = {"start": True, "foodPreset": "white_rice", "quantity": 300, "unit": "GRAMS"}
    assert COOK.refused(device, "Cook", wrong_unit) == "notSupported"
    nothing = {"start": True, "foodPreset": "white_rice", "quantity": 0, "unit": "CUPS"}
    assert COOK.refused(device, "Cook", nothing) == "valueOutOfRange"
    assert COOK.refused(device, "Cook", {"start": True, "quantity": 2, "unit": "CUPS"}) == "notSupported"


def test_no_stale_quantity_after_stopping_or_cooking_without_one() -> None:
    params = {"start": True, "foodPreset": "porridge", "quantity": 200, "unit": "GRAMS"}
    cooking = COOK.run(COOK.register(RICE_COOKER), "Cook", params).device
    stopped = COOK.run(cooking, "Cook", {"start": False})
    assert stopped.reported == {"currentCookingMode": "NONE", "currentFoodPreset": "NONE"}

    again = COOK.run(cooking, "Cook", {"start": True, "foodPreset": "white_rice"})
    assert again.reported == {"currentCookingMode": "COOK", "currentFoodPreset": "white_rice"}

    warm = COOK.run(cooking, "Cook", {"start": True, "cookingMode": "WARM"})
    assert warm.reported == {"currentCookingMode": "WARM", "currentFoodPreset": "NONE"}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"currentCookingMode": "STEAM"}, "not in supportedCookingModes"),
        ({"currentCookingMode": "COOK", "currentFoodPreset": "pizza"}, "not one of foodPresets"),
        ({"currentCookingMode": "SIMMER"}, "currentCookingMode"),
    ],
)
def test_states_the_device_cannot_be_in_are_refused(state: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidDevice, match=message):
        COOK.register(RICE_COOKER, state)


def test_a_preset_listed_twice_is_refused() -> None:
    presets = RICE_COOKER["foodPresets"]
    with pytest.raises(InvalidDevice, match="'white_rice' is listed twice"):
        COOK.register({**RICE_COOKER, "foodPresets": [presets[0], presets[0]]})
