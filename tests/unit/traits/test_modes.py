"""Modes: settings by name or synonym in the device's language, merging, command-only and query-only devices."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from functions.core.errors import InvalidDevice
from tests.unit.traits.appliance_helpers import Harness

MODES = Harness("Modes")


def mode(name: str, synonyms: list[str], settings: dict[str, list[str]], french: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "name_values": [{"name_synonym": synonyms, "lang": "en"}],
        "settings": [
            {
                "setting_name": setting,
                "setting_values": [{"setting_synonym": words, "lang": "en"}]
                + ([{"setting_synonym": [f"{words[0]} (fr)"], "lang": "fr"}] if french else []),
            }
            for setting, words in settings.items()
        ],
        "ordered": False,
    }


WASHER: dict[str, Any] = {
    "availableModes": [
        mode("load_mode", ["load", "load size"], {"small_load": ["small"], "large_load": ["large", "full"]}),
        mode("temp_mode", ["temperature"], {"hot_temp": ["hot"], "cold_temp": ["cold", "delicate"]}, french=True),
    ]
}


def test_new_devices_start_at_each_modes_first_setting() -> None:
    assert MODES.register(WASHER).query_states() == {
        "currentModeSettings": {"load_mode": "small_load", "temp_mode": "hot_temp"}
    }


def test_setting_one_mode_keeps_the_others() -> None:
    outcome = MODES.run(MODES.register(WASHER), "SetModes", {"updateModeSettings": {"load_mode": "large_load"}})
    assert outcome.reported == {"currentModeSettings": {"load_mode": "large_load", "temp_mode": "hot_temp"}}


@pytest.mark.parametrize(
    ("mode_said", "setting_said", "language"),
    [
        ("temp_mode", "cold_temp", "en"),
        ("temperature", "Delicate", "en"),
        ("temp_mode", "cold (fr)", "fr-CA"),
    ],
)
def test_modes_and_settings_by_name_or_synonym(mode_said: str, setting_said: str, language: str) -> None:
    device = MODES.register(WASHER)
    outcome = MODES.run(device, "SetModes", {"updateModeSettings": {mode_said: setting_said}}, language=language)
    assert outcome.reported["currentModeSettings"]["temp_mode"] == "cold_temp"


@pytest.mark.parametrize(
    ("update", "language"),
    [
        ({"spin_mode": "fast"}, "en"),
        ({"temp_mode": "warm"}, "en"),
        ({"temp_mode": "cold (fr)"}, "en"),
        ({"temp_mode": "delicate"}, "fr"),
        ({"load_mode": "cold_temp"}, "en"),
    ],
)
def test_unknown_modes_and_settings_are_not_supported(update: dict[str, str], language: str) -> None:
    code = MODES.refused(MODES.register(WASHER), "SetModes", {"updateModeSettings": update}, language=language)
    assert code == "notSupported"


def test_one_mode_per_command_as_google_sends_it() -> None:
    both = {"updateModeSettings": {"load_mode": "large_load", "temp_mode": "cold_temp"}}
    assert MODES.refused(MODES.register(WASHER), "SetModes", both) == "protocolError"
    assert MODES.refused(MODES.register(WASHER), "SetModes", {"updateModeSettings": {}}) == "protocolError"


def test_query_only_devices_refuse_commands() -> None:
    device = MODES.register({**WASHER, "queryOnlyModes": True})
    assert device.query_states()["currentModeSettings"]["load_mode"] == "small_load"
    code = MODES.refused(device, "SetModes", {"updateModeSettings": {"load_mode": "large_load"}})
    assert code == "functionNotSupported"


def test_command_only_devices_keep_no_state() -> None:
    device = MODES.register({**WASHER, "commandOnlyModes": True})
    assert device.query_states() == {}
    outcome = MODES.run(device, "SetModes", {"updateModeSettings": {"load_mode": "large_load"}})
    assert outcome.reported == {}
    assert outcome.device.state == {}
    assert MODES.refused(device, "SetModes", {"updateModeSettings": {"load_mode": "huge"}}) == "notSupported"


def test_both_switches_are_refused() -> None:
    with pytest.raises(InvalidDevice, match="cannot both be true"):
        MODES.register({**WASHER, "commandOnlyModes": True, "queryOnlyModes": True})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"spin_mode": "fast"}, "'spin_mode' is not one of availableModes"),
        ({"load_mode": "cold_temp"}, "'cold_temp' is not a setting of 'load_mode'"),
    ],
)
def test_states_the_device_cannot_be_in_are_refused(settings: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidDevice, match=message):
        MODES.register(WASHER, {"currentModeSettings": settings})


def test_duplicates_and_single_setting_modes_are_refused() -> None:
    with pytest.raises(InvalidDevice, match="mode 'load_mode' is listed twice"):
        MODES.register({"availableModes": [WASHER["availableModes"][0]] * 2})
    lonely = copy.deepcopy(WASHER["availableModes"][0])
    lonely["settings"] = lonely["settings"][:1]
    with pytest.raises(InvalidDevice, match=r"\(Modes\)"):
        MODES.register({"availableModes": [lonely]})
