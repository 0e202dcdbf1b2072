"""Toggles: toggles by name or synonym in the device's language, merging, command-only and query-only devices."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import InvalidDevice
from tests.unit.traits.appliance_helpers import Harness

TOGGLES = Harness("Toggles")
PURIFIER: dict[str, Any] = {
    "availableToggles": [
        {
            "name": "sterilization_toggle",
            "name_values": [
                {"name_synonym": ["bio clean"], "lang": "en"},
                {"name_synonym": ["Sterilisation"], "lang": "fr"},
            ],
        },
        {"name": "energysaving_toggle", "name_values": [{"name_synonym": ["energy saving", "eco"], "lang": "en"}]},
    ]
}


def test_new_devices_have_every_toggle_off() -> None:
    assert TOGGLES.register(PURIFIER).query_states() == {
        "currentToggleSettings": {"sterilization_toggle": False, "energysaving_toggle": False}
    }


def test_setting_one_toggle_keeps_the_others() -> None:
    on = TOGGLES.run(TOGGLES.register(PURIFIER), "SetToggles", {"updateToggleSettings": {"energysaving_toggle": True}})
    assert on.reported == {"currentToggleSettings": {"sterilization_toggle": False, "energysaving_toggle": True}}
    both = TOGGLES.run(on.device, "SetToggles", {"updateToggleSettings": {"sterilization_toggle": True}})
    assert both.reported == {"currentToggleSettings": {"sterilization_toggle": True, "energysaving_toggle": True}}
    off = TOGGLES.run(both.device, "SetToggles", {"updateToggleSettings": {"energysaving_toggle": False}})
    assert off.reported == {"currentToggleSettings": {"sterilization_toggle": True, "energysaving_toggle": False}}


@pytest.mark.parametrize(("said", "language"), [("ECO", "en"), ("bio clean", "en-IN"), ("sterilisation", "fr")])
def test_toggles_by_synonym_in_the_devices_language(said: str, language: str) -> None:
    outcome = TOGGLES.run(
        TOGGLES.register(PURIFIER), "SetToggles", {"updateToggleSettings": {said: True}}, language=language
    )
    assert list(outcome.reported["currentToggleSettings"].values()).count(True) == 1


@pytest.mark.parametrize(("said", "language"), [("turbo", "en"), ("sterilisation", "en"), ("eco", "fr")])
def test_unknown_toggles_are_not_supported(said: str, language: str) -> None:
    code = TOGGLES.refused(
        TOGGLES.register(PURIFIER), "SetToggles", {"updateToggleSettings": {said: True}}, language=language
    )
    assert code == "notSupported"


def test_query_only_devices_refuse_commands() -> None:
    device = TOGGLES.register({**PURIFIER, "queryOnlyToggles": True})
    code = TOGGLES.refused(device, "SetToggles", {"updateToggleSettings": {"energysaving_toggle": True}})
    assert code == "functionNotSupported"


def test_command_only_devices_keep_no_state() -> None:
    device = TOGGLES.register({**PURIFIER, "commandOnlyToggles": True})
    assert device.query_states() == {}
    outcome = TOGGLES.run(device, "SetToggles", {"updateToggleSettings": {"eco": True}})
    assert outcome.reported == {}
    assert outcome.device.state == {}


def test_non_boolean_values_are_protocol_errors() -> None:
    params = {"updateToggleSettings": {"energysaving_toggle": "on"}}
    assert TOGGLES.refused(TOGGLES.register(PURIFIER), "SetToggles", params) == "protocolError"


def test_states_and_attributes_rules() -> None:
    with pytest.raises(InvalidDevice, match="turbo: not one of availableToggles"):
        TOGGLES.register(PURIFIER, {"currentToggleSettings": {"turbo": True}})
    with pytest.raises(InvalidDevice, match="'energysaving_toggle' is listed twice"):
        TOGGLES.register({"availableToggles": [PURIFIER["availableToggles"][1]] * 2})
