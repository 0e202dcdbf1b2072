"""The pages' languages: gettext catalogues (Babel), chosen by the browser's Accept-Language.

A catalogue is functions/linking/translations/<language>/LC_MESSAGES/messages.po, named by its Babel identifier
(`de`, `zh_Hans`, `pt_BR`); every folder there is a language the pages speak, so adding one is adding its .po file.
The .po files are the only copy: each is compiled in memory the first time its language is asked for (no .mo files,
which Cloud Functions' build would not make and which could drift from the .po they came from).

The choice, in order:
1. the browser's languages by their q-values (ties in the order given; q=0 and `*` are ignored), each matched
   first exactly (case and `-`/`_` aside: `pt-BR` is `pt_BR`), then by language and script, the script being the one
   the tag names or the one Unicode's likely-subtags data gives it (`zh-CN` and `zh-SG` are Simplified Chinese,
   `zh-TW` and `zh-HK` Traditional: they do not get `zh_Hans`);
2. if none matches, ACCOUNT_LINKING_DEFAULT_LANGUAGE (default `en`).
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from babel.core import Locale, UnknownLocaleError, get_global
from babel.support import Translations
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
TEMPLATES = Path(__file__).resolve().parent / "templates"
DOMAIN = "messages"
FALLBACK = "en"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Language:
    identifier: str  # the catalogue's folder: zh_Hans
    tag: str  # BCP 47, for lang= and Content-Language: zh-Hans
    direction: str  # ltr or rtl, for dir=
    language: str
    script: str


def _parse(identifier: str) -> Locale | None:
    try:
        return Locale.parse(identifier.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def _script(locale: Locale) -> str:
    """The locale's script, as its tag says or as Unicode's likely subtags give it."""
    if locale.script:
        return str(locale.script)
    likely = get_global("likely_subtags")
    for candidate in (f"{locale.language}_{locale.territory}" if locale.territory else "", locale.language):
        full = likely.get(candidate) if candidate else None
        found = _parse(full) if full else None
        if found is not None and found.script:
            return str(found.script)
    return ""


@functools.cache
def languages() -> dict[str, Language]:
    """Every catalogue shipped, by identifier."""
    found = {}
    for po in sorted(TRANSLATIONS.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        identifier = po.parent.parent.name
        locale = _parse(identifier)
        if locale is None:
            log.error("translation folder is not a language", extra={"folder": identifier})
            continue
        tag = identifier.replace("_", "-")
        found[identifier] = Language(identifier, tag, locale.text_direction, locale.language, _script(locale))
    return found


def negotiate(accept_language: str, default: str = FALLBACK) -> Language:
    """The language for a request with this Accept-Language header (see the module's docstring)."""
    available = languages()
    by_folder = {identifier.casefold(): language for identifier, language in available.items()}
    wanted = parse_accept_header(accept_language or "", LanguageAccept)
    for tag, quality in wanted:  # highest quality first
        if quality <= 0 or tag == "*":
            continue
        exact = by_folder.get(tag.replace("-", "_").casefold())
        if exact is not None:
            return exact
        locale = _parse(tag)
        if locale is None:
            continue
        script = _script(locale)
        alike = [lang for lang in available.values() if lang.language == locale.language and lang.script == script]
        if alike:
            return min(alike, key=lambda lang: len(lang.identifier))  # the general one: `de` before `de_CH`
    return available.get(default) or available.get(FALLBACK) or next(iter(available.values()))


@functools.cache
def translations(identifier: str) -> Translations:
    """The catalogue compiled in memory from its .po file (once per instance and language)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with (TRANSLATIONS / identifier / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as source:
        catalog = read_po(source, locale=identifier, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@functools.cache
def environment(identifier: str) -> jinja2.Environment:
    """The templates speaking one language: `{% trans %}` and `_()` read its catalogue."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(identifier), newstyle=True)  # type: ignore[attr-defined]
    return env


class Translator:
    """One request's language, for the messages made in Python (errors, the throttling notice)."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self._translations = translations(language.identifier)

    def gettext(self, message: str, **values: Any) -> str:
        text = self._translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, number: int, **values: Any) -> str:
        return self._translations.ngettext(singular, plural, number) % {"num": number, **values}

    def render(self, template: str, **values: Any) -> str:
        return environment(self.language.identifier).get_template(template).render(language=self.language, **values)


def N_(message: str) -> str:
    """Marks a message for the catalogues (gettext's name for it); it is translated where it is shown."""
    return message
