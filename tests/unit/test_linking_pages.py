"""The pages' languages (gettext catalogues through Babel) and the brand settings, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.linking import branding, i18n

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = {"en", "de", "fr", "es", "ja", "ko", "zh_Hans", "id"}


def extracted_messages() -> set[str | tuple[str, str]]:
    """What `pybabel extract` finds in the templates and the code today (babel.cfg)."""
    from babel.messages.extract import extract_from_dir

    config = ROOT / "functions" / "linking" / "translations" / "babel.cfg"
    from babel.messages.frontend import parse_mapping_cfg

    with config.open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = extract_from_dir(
        str(ROOT), method_map, options_map, keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    )
    return {message for _, _, message, _, _ in found}


def catalogue(identifier: str) -> object:
    from babel.messages.pofile import read_po

    path = i18n.TRANSLATIONS / identifier / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=identifier)


def test_the_pages_speak_at_least_the_eight_languages() -> None:
    assert set(i18n.languages()) >= LANGUAGES
    assert i18n.languages()["zh_Hans"].tag == "zh-Hans"
    assert all(language.direction == "ltr" for language in i18n.languages().values())


def test_every_catalogue_translates_every_message_with_its_placeholders() -> None:
    from babel.messages.pofile import read_po

    wanted = extracted_messages()
    with (i18n.TRANSLATIONS / "messages.pot").open("rb") as handle:
        template = {message.id for message in read_po(handle) if message.id}
    assert template == wanted, "messages.pot is stale: run the pybabel extract of docs/account-linking.md"
    for identifier in i18n.languages():
        found = catalogue(identifier)
        messages = {message.id: message for message in found if message.id}  # type: ignore[attr-defined]
        assert set(messages) == wanted, identifier
        for message in messages.values():
            assert "fuzzy" not in message.flags, (identifier, message.id)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings), (identifier, message.id)
        assert not list(found.check()), identifier  # type: ignore[attr-defined] # placeholders as in the msgid


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("de-CH,de;q=0.9,en;q=0.8", "de"),
        ("fr-CA", "fr"),
        ("es-419,es;q=0.9", "es"),
        ("ja-JP", "ja"),
        ("ko", "ko"),
        ("zh-CN,zh;q=0.9", "zh_Hans"),
        ("zh-SG", "zh_Hans"),
        ("zh-Hans-HK", "zh_Hans"),
        ("id-ID", "id"),
        ("en-GB", "en"),
        ("pt-BR,fr;q=0.5", "fr"),  # the first language there is a catalogue for
        ("fr;q=0.4,ja;q=0.9", "ja"),  # by quality, not order
        ("zh-TW", "en"),  # Traditional Chinese is not Simplified: the default
        ("zh-HK,ko;q=0.5", "ko"),
        ("xx-YY, *", "en"),
        ("de;q=0", "en"),
        ("", "en"),
        ("garbage;;;,,", "en"),
    ],
)
def test_the_language_follows_accept_language(header: str, chosen: str) -> None:
    assert i18n.negotiate(header).identifier == chosen


def test_the_default_language_is_a_setting() -> None:
    assert i18n.negotiate("pt-BR", default="de").identifier == "de"
    assert i18n.negotiate("pt-BR", default="no-such").identifier == "en"


def test_messages_made_in_python_are_translated_with_plurals() -> None:
    german = i18n.Translator(i18n.languages()["de"])
    assert german.gettext("Cancel") == "Abbrechen"
    singular, plural = (
        "Too many sign-in attempts. Try again in %(num)d minute.",
        "Too many sign-in attempts. Try again in %(num)d minutes.",
    )
    assert german.ngettext(singular, plural, 1).endswith("in 1 Minute erneut.")
    assert german.ngettext(singular, plural, 5).endswith("in 5 Minuten erneut.")
    japanese = i18n.Translator(i18n.languages()["ja"])
    assert "15 分後" in japanese.ngettext(singular, plural, 15)


def test_a_catalogue_compiles_in_memory_without_mo_files() -> None:
    assert not list(i18n.TRANSLATIONS.rglob("*.mo")), "the .po files are the only copy"
    compiled = i18n.translations("ko")
    assert compiled.gettext("Agree and link") == "동의 및 연결"


# the brand


@pytest.fixture(autouse=True)
def fresh_settings() -> None:
    """Each setting is checked (and a bad one logged) once per instance: here once per test."""
    for cached in (branding._accent, branding._link, branding._logo):
        cached.cache_clear()


def test_the_accent_text_and_lines_keep_their_contrast(monkeypatch: pytest.MonkeyPatch) -> None:
    assert branding.contrast("#000000", "#ffffff") == pytest.approx(21)
    assert branding.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # WCAG's own example colour
    for accent in ("#1a73e8", "#ffeb3b", "#0b8043", "#000000", "#ffffff", "#777777"):
        monkeypatch.setenv("ACCOUNT_LINKING_ACCENT_COLOR", accent)
        brand = branding.current()
        assert brand.accent == accent
        assert branding.contrast(brand.accent, brand.accent_text) >= 4.5, accent  # text on the accent
        assert branding.contrast(brand.accent_line, "#ffffff") >= 3, accent  # outlines and borders on white


def test_the_brand_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNT_LINKING_SERVICE_NAME", "Acme Home")
    monkeypatch.setenv("ACCOUNT_LINKING_ACCENT_COLOR", "#FFEB3B")
    monkeypatch.setenv("ACCOUNT_LINKING_LOGO", "functions/linking/static/logo-example.svg")
    monkeypatch.setenv("ACCOUNT_LINKING_PRIVACY_URL", "https://acme.example/privacy")
    monkeypatch.setenv("ACCOUNT_LINKING_SUPPORT_URL", "mailto:help@acme.example")
    monkeypatch.setenv("ACCOUNT_LINKING_TERMS_URL", "http://acme.example/terms")
    brand = branding.current()
    assert brand.name == "Acme Home"
    assert (brand.accent, brand.accent_text, brand.accent_line) == ("#ffeb3b", "#000000", "#202124")
    assert brand.logo is not None
    assert brand.logo.src == "?asset=logo"
    assert brand.logo.content_type == "image/svg+xml"
    assert brand.csp.endswith("; img-src 'self'")
    assert (brand.privacy_url, brand.support_url, brand.terms_url) == (
        "https://acme.example/privacy",
        "mailto:help@acme.example",
        None,  # not https: left out
    )


def test_a_logo_url_is_named_exactly_in_the_csp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNT_LINKING_LOGO", "https://cdn.acme.example/brand/logo.png?v=3")
    brand = branding.current()
    assert brand.logo is not None
    assert brand.logo.src == "https://cdn.acme.example/brand/logo.png?v=3"
    assert brand.csp.endswith("; img-src https://cdn.acme.example/brand/logo.png")


@pytest.mark.parametrize(
    "setting",
    [
        "/etc/passwd",
        "../../etc/hostname",
        "functions/linking/pages.py",
        "functions/linking/static/missing.svg",
        "https://cdn.acme.example/logo.png; script-src *",
        "http://cdn.acme.example/logo.png",
        "https://user:pass@cdn.acme.example/logo.png",
    ],
)
def test_a_logo_that_is_not_a_shipped_image_or_a_clean_https_url_is_left_out(
    setting: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACCOUNT_LINKING_LOGO", setting)
    brand = branding.current()
    assert brand.logo is None
    assert "img-src" not in brand.csp
    assert "ACCOUNT_LINKING_LOGO is left out" in caplog.text


def test_a_colour_that_is_not_rrggbb_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("red", "#12345", "#1a73e8; background: url(x)", "#gggggg"):
        monkeypatch.setenv("ACCOUNT_LINKING_ACCENT_COLOR", bad)
        assert branding.current().accent == branding.DEFAULT_ACCENT
