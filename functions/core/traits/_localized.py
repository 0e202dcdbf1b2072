"""Finding a named setting by its internal name or by a synonym in the device's language.

Google's attributes name modes, toggles, fill levels, food presets, dispense items and presets with an
internal name plus lists of synonyms per language. Commands normally carry the internal name, but a user's
words may come through instead, so both are accepted: the internal name in any language, synonyms only in
the device's language ("en" matches "en-US" and the other way round).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _primary(language: str) -> str:
    return language.replace("_", "-").split("-", 1)[0].casefold()


def same_language(first: str, second: str) -> bool:
    return _primary(first) == _primary(second)


def normalized(text: str) -> str:
    """Case and spacing do not distinguish two names ("Brown  rice" is "brown rice")."""
    return " ".join(text.split()).casefold()


def synonyms(entry: Mapping[str, Any], values_key: str, words_key: str, language: str) -> list[str]:
    """The synonyms of one entry in `language`, in the order the device listed them."""
    found: list[str] = []
    for values in entry.get(values_key) or ():
        if isinstance(values, Mapping) and same_language(str(values.get("lang", "")), language):
            found.extend(str(word) for word in values.get(words_key) or ())
    return found


def find(
    entries: Iterable[Mapping[str, Any]],
    wanted: str,
    *,
    name_key: str,
    values_key: str,
    words_key: str,
    language: str,
) -> Mapping[str, Any] | None:
    """The entry whose internal name is `wanted`, else the first whose synonyms in `language` include it."""
    listed = [entry for entry in entries if isinstance(entry, Mapping)]
    for entry in listed:
        if entry.get(name_key) == wanted:
            return entry
    key = normalized(wanted)
    for entry in listed:
        if normalized(str(entry.get(name_key, ""))) == key:
            return entry
    for entry in listed:
        if any(normalized(word) == key for word in synonyms(entry, values_key, words_key, language)):
            return entry
    return None
