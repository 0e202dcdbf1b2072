"""The shared pieces of the traits with named settings: lookup by name or synonym, refusal, "listed twice"."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError
from functions.core.traits import _localized

NAMES = _localized.NamedEntries(name_key="name", values_key="name_values", words_key="name_synonym")
ENTRIES: list[dict[str, Any]] = [
    {"name": "eco", "name_values": [{"lang": "en", "name_synonym": ["Energy  saving"]}]},
    {"name": "child_lock", "name_values": [{"lang": "de", "name_synonym": ["Kindersicherung"]}]},
]


@pytest.mark.parametrize(
    ("wanted", "language", "found"),
    [
        ("eco", "de", "eco"),  # the internal name in any language
        ("ECO", "fr", "eco"),
        ("energy saving", "en-US", "eco"),  # a synonym in the device's language, whatever the spacing or case
        ("kindersicherung", "de_AT", "child_lock"),
        ("Kindersicherung", "en", None),  # a synonym of another language
        ("turbo", "en", None),
    ],
)
def test_an_entry_is_found_by_name_or_by_synonym_in_the_language(wanted: str, language: str, found: str) -> None:
    entry = NAMES.find(ENTRIES, wanted, language)
    assert (entry["name"] if entry else None) == found


def test_an_entry_nobody_names_is_refused_with_the_traits_error() -> None:
    assert NAMES.require(ENTRIES, "eco", "en", code="notSupported", message="unused")["name"] == "eco"
    with pytest.raises(CommandError) as refused:
        NAMES.require(ENTRIES, "turbo", "en", code="unknownFoodPreset", message="no preset 'turbo'")
    assert (refused.value.code, refused.value.debug) == ("unknownFoodPreset", "no preset 'turbo'")


def test_each_name_listed_twice_is_one_problem() -> None:
    entries = [*ENTRIES, ENTRIES[1], ENTRIES[1], ENTRIES[0]]
    assert NAMES.listed_twice(entries, "attributes (Toggles).availableToggles") == [
        "attributes (Toggles).availableToggles: 'child_lock' is listed twice",
        "attributes (Toggles).availableToggles: 'eco' is listed twice",
    ]
    assert NAMES.listed_twice(ENTRIES, "attributes (Toggles).availableToggles") == []
    assert _localized.listed_twice("attributes (Channel).availableChannels", ["a", "b", "a"], "key ") == [
        "attributes (Channel).availableChannels: key 'a' is listed twice"
    ]
