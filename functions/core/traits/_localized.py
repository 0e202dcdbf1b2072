"""Named settings: finding one by its internal name or by a synonym in the device's language, and refusing
attributes that list one name twice.

Google's attributes name modes, toggles, fill levels, fan speeds, arm levels, food presets, dispense items and
presets, applications and inputs with an internal name plus lists of synonyms per language. Commands normally
carry the internal name, but a user's words may come through instead, so both are accepted: the internal name
in any language, synonyms only in the device's language ("en" matches "en-US" and the other way round).
Each trait describes its entries once with a `NamedEntries`, which does both the lookup and the check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.errors import CommandError


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


def repeated(names: Iterable[Any]) -> list[str]:
    """The names given more than once, each once, sorted."""
    listed = [str(name) for name in names]
    return sorted({name for name in listed if listed.count(name) > 1})


def listed_twice(where: str, names: Iterable[Any], what: str = "") -> list[str]:
    """One problem per name listed more than once: a command naming it could not tell which entry is meant.

    `where` names the trait and the attribute ("attributes (Toggles).availableToggles"), `what` is put before
    the name ("mode ", "key ").
    """
    return [f"{where}: {what}{name!r} is listed twice" for name in repeated(names)]


@dataclass(frozen=True)
class NamedEntries:
    """How one attribute's entries spell their names, e.g. Modes' availableModes:
    `NamedEntries(name_key="name", values_key="name_values", words_key="name_synonym")`."""

    name_key: str  # the internal name, used in commands and states
    values_key: str  # the lists of synonyms, one per language
    words_key: str  # the synonyms within one of those lists

    def find(self, entries: Iterable[Mapping[str, Any]], wanted: str, language: str) -> Mapping[str, Any] | None:
        """The entry whose internal name is `wanted`, else the first whose synonyms in `language` include it."""
        listed = [entry for entry in entries if isinstance(entry, Mapping)]
        for entry in listed:
            if entry.get(self.name_key) == wanted:
                return entry
        key = normalized(wanted)
        for entry in listed:
            if normalized(str(entry.get(self.name_key, ""))) == key:
                return entry
        for entry in listed:
            if any(normalized(word) == key for word in synonyms(entry, self.values_key, self.words_key, language)):
                return entry
        return None

    def require(
        self, entries: Iterable[Mapping[str, Any]], wanted: str, language: str, *, code: str, message: str
    ) -> Mapping[str, Any]:
        """The entry `wanted` names (see `find`); if none does, the command is refused with `code` and `message`."""
        found = self.find(entries, wanted, language)
        if found is None:
            raise CommandError(code, message)
        return found

    def listed_twice(self, entries: Iterable[Mapping[str, Any]], where: str, what: str = "") -> list[str]:
        """The problems of entries sharing an internal name (see the module-level `listed_twice`)."""
        return listed_twice(where, (entry[self.name_key] for entry in entries), what)
