"""AppSelector: applications by key, name or synonym in the device's language, and noAvailableApp."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError, InvalidDevice
from functions.core.schema import is_valid
from functions.core.traits.appselector import AppSelector
from tests.schema_oracle import oracle
from tests.unit.traits.media_helpers import apply, register, run

APPS: dict[str, Any] = {
    "availableApplications": [
        {
            "key": "youtube",
            "names": [
                {"name_synonym": ["YouTube", "YouTube US"], "lang": "en"},
                {"name_synonym": ["YouTube", "YouTube DE"], "lang": "de"},
            ],
        },
        {
            "key": "kodi",
            "names": [
                {"name_synonym": ["Kodi", "media center"], "lang": "en"},
                {"name_synonym": ["Kodi", "Mediencenter"], "lang": "de"},
            ],
        },
    ]
}


def tv(state: dict[str, Any] | None = None) -> Any:
    return register(["AppSelector"], APPS, state)


def test_a_new_device_shows_its_first_application() -> None:
    device = tv()
    assert device.query_states() == {"currentApplication": "youtube"}
    oracle().assert_states(device.trait_names, device.query_states(), "initial AppSelector")


@pytest.mark.parametrize(
    ("params", "language"),
    [
        ({"newApplication": "kodi"}, "en"),
        ({"newApplicationName": "media center"}, "en"),
        ({"newApplicationName": "Media  Center"}, "en-US"),  # case, spacing and region do not matter
        ({"newApplicationName": "Mediencenter"}, "de"),
        ({"newApplication": "kodi", "newApplicationName": "Kodi"}, "en"),
        ({"newApplication": "unknown-key", "newApplicationName": "kodi"}, "en"),  # the name still finds it
    ],
)
def test_select_finds_the_application_by_key_name_or_synonym(params: dict[str, Any], language: str) -> None:
    device = tv()
    after = apply(device, run(device, "appSelect", params, language=language))
    assert after.query_states() == {"currentApplication": "kodi"}


def test_synonyms_count_only_in_the_device_language() -> None:
    device = tv()
    with pytest.raises(CommandError) as refused:
        run(device, "appSelect", {"newApplicationName": "Mediencenter"}, language="en")
    assert refused.value.code == "noAvailableApp"


@pytest.mark.parametrize("command", ["appSelect", "appInstall", "appSearch"])
def test_an_unknown_application_is_no_available_app(command: str) -> None:
    device = tv()
    with pytest.raises(CommandError) as refused:
        run(device, command, {"newApplicationName": "Netflix"})
    assert refused.value.code == "noAvailableApp"
    assert refused.value.code in oracle().error_codes()


@pytest.mark.parametrize("command", ["appInstall", "appSearch"])
def test_install_and_search_leave_the_foreground_application(command: str) -> None:
    device = tv({"currentApplication": "youtube"})
    effect = run(device, command, {"newApplication": "kodi"})
    assert effect.state == {}
    assert apply(device, effect).query_states() == {"currentApplication": "youtube"}


def test_selecting_the_current_application_again_succeeds() -> None:
    device = tv({"currentApplication": "kodi"})
    assert apply(device, run(device, "appSelect", {"newApplication": "kodi"})).query_states() == {
        "currentApplication": "kodi"
    }


@pytest.mark.parametrize("params", [{}, {"newApplication": 3}, {"app": "kodi"}])
def test_malformed_params_are_a_protocol_error(params: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as refused:
        run(tv(), "appSelect", params)
    assert refused.value.code == "protocolError"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"newApplication": "a"},
        {"newApplicationName": "b"},
        {"newApplication": "a", "newApplicationName": "b"},
        {"newApplication": 1},
        {"other": "x"},
    ],
)
def test_our_params_schema_agrees_with_google(params: dict[str, Any]) -> None:
    for command in ("appInstall", "appSearch", "appSelect"):
        google = oracle().trait("AppSelector").commands[f"action.devices.commands.{command}"].params
        assert google is not None
        ours = AppSelector.commands[f"action.devices.commands.{command}"].params_schema
        assert is_valid(ours, params) == (not oracle().problems(google, params)), (command, params)


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        ({"availableApplications": []}, "availableApplications"),
        ({"availableApplications": [{"key": "a", "names": []}, {"key": "a", "names": []}]}, "listed twice"),
        ({"availableApplications": [{"key": "a", "names": [{"name_synonym": [], "lang": "en"}]}]}, "name_synonym"),
        ({"availableApplications": [{"names": []}]}, "key"),
    ],
)
def test_unusable_application_lists_are_refused_naming_the_trait(attributes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidDevice, match=r"\(AppSelector\)") as refused:
        register(["AppSelector"], attributes)
    assert problem in str(refused.value)


def test_google_state_examples_are_valid_for_us() -> None:
    for example in oracle().examples(oracle().trait("AppSelector").states):
        assert AppSelector.state_errors(APPS, example) == [], example
