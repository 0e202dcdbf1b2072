"""The maker's brand on the sign-in and consent pages: product name, logo, accent colour and links.

Settings (functions.platform.config; every one optional but the name):
    ACCOUNT_LINKING_SERVICE_NAME     the product name the pages use
    ACCOUNT_LINKING_LOGO             a file shipped with the deployment (a path from the repository root, such as
                                     functions/linking/static/logo-example.svg: .svg, .png, .webp, .jpg or .gif, at
                                     most 256 KiB), served by `authorize` itself at `?asset=logo`; or an https URL
    ACCOUNT_LINKING_ACCENT_COLOR     #rrggbb for buttons and focus rings (their text colour follows for contrast)
    ACCOUNT_LINKING_PRIVACY_URL, _TERMS_URL, _SUPPORT_URL, _PASSWORD_RESET_URL
                                     https links shown when set (support may also be a mailto: address)

The pages' Content-Security-Policy allows exactly the logo: for a shipped file the function's own origin ('self',
since CSP cannot name a query and the function does not know the path it is served under; `authorize` serves no
other image), for a URL that URL. A setting that is not valid is logged and left out: the pages still work.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from functions.platform import config

# The deployed source's root (the folder of main.py): shipped logos are looked up from here, and only in here.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
LOGO_ASSET = "logo"
MAX_LOGO_BYTES = 256 * 1024
IMAGE_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}
DEFAULT_ACCENT = "#1a73e8"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Characters that would end a CSP source or an HTML attribute: a URL holding one is refused.
_UNSAFE_IN_URL = re.compile(r"[\s;,'\"<>\\]")
BASE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Logo:
    src: str  # what the page's <img src> says
    csp_source: str  # what its img-src allows
    content: bytes | None = None  # a shipped file's bytes, served at ?asset=logo
    content_type: str | None = None


@dataclass(frozen=True)
class Brand:
    name: str
    logo: Logo | None
    accent: str
    accent_text: str  # black or white, whichever reads better on the accent
    accent_line: str  # the accent where it has 3:1 against white (outlines, borders), else near-black
    privacy_url: str | None = None
    terms_url: str | None = None
    support_url: str | None = None
    password_reset_url: str | None = None

    @property
    def csp(self) -> str:
        return f"{BASE_CSP}; img-src {self.logo.csp_source}" if self.logo else BASE_CSP


def current() -> Brand:
    """The brand as the settings say now (cheap: the logo file is read once per instance)."""
    accent = _accent(config.account_linking_accent_color())
    return Brand(
        name=config.account_linking_service_name(),
        logo=_logo(config.account_linking_logo()),
        accent=accent,
        accent_text="#000000" if contrast(accent, "#000000") >= contrast(accent, "#ffffff") else "#ffffff",
        accent_line=accent if contrast(accent, "#ffffff") >= 3 else "#202124",
        privacy_url=_link("ACCOUNT_LINKING_PRIVACY_URL", config.account_linking_privacy_url()),
        terms_url=_link("ACCOUNT_LINKING_TERMS_URL", config.account_linking_terms_url()),
        support_url=_link("ACCOUNT_LINKING_SUPPORT_URL", config.account_linking_support_url(), mail=True),
        password_reset_url=_link("ACCOUNT_LINKING_PASSWORD_RESET_URL", config.account_linking_password_reset_url()),
    )


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""

    def luminance(color: str) -> float:
        channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@functools.cache
def _accent(setting: str) -> str:
    if not setting:
        return DEFAULT_ACCENT
    if _COLOR.match(setting):
        return setting.lower()
    log.error("ACCOUNT_LINKING_ACCENT_COLOR must read #rrggbb; the default is used", extra={"value": setting[:40]})
    return DEFAULT_ACCENT


def https_url_problem(url: str, mail: bool = False) -> str | None:
    """Why `url` cannot be a link or logo of the pages, or None."""
    if mail and url.startswith("mailto:"):
        return None if "@" in url and not _UNSAFE_IN_URL.search(url) else "not a mailto: address"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme != "https" or not parts.hostname:
        return "must be an absolute https URL"
    if parts.username or parts.password or parts.fragment or _UNSAFE_IN_URL.search(url):
        return "may hold no credentials, fragment, spaces, quotes, ; or ,"
    return None


@functools.cache
def _link(name: str, url: str, mail: bool = False) -> str | None:
    if not url:
        return None
    problem = https_url_problem(url, mail)
    if problem:
        log.error(f"{name} is left out: {problem}", extra={"value": url[:200]})
        return None
    return url


@functools.cache
def _logo(setting: str) -> Logo | None:
    if not setting:
        return None
    if "://" in setting:
        problem = https_url_problem(setting)
        if problem:
            log.error(f"ACCOUNT_LINKING_LOGO is left out: {problem}", extra={"value": setting[:200]})
            return None
        parts = urlsplit(setting)
        # CSP matches the path exactly and ignores the query: the source is the URL without it.
        return Logo(setting, f"https://{parts.netloc}{parts.path or '/'}")
    path = (SOURCE_ROOT / setting).resolve()
    problem = _logo_file_problem(path)
    if problem:
        log.error(f"ACCOUNT_LINKING_LOGO is left out: {problem}", extra={"value": setting[:200]})
        return None
    return Logo(f"?asset={LOGO_ASSET}", "'self'", path.read_bytes(), IMAGE_TYPES[path.suffix.lower()])


def _logo_file_problem(path: Path) -> str | None:
    if not path.is_relative_to(SOURCE_ROOT):
        return "a logo file must be part of the deployment (a path from the repository root)"
    if path.suffix.lower() not in IMAGE_TYPES:
        return f"a logo file must be one of {', '.join(sorted(IMAGE_TYPES))}"
    if not path.is_file():
        return "no such file in the deployment"
    if path.stat().st_size > MAX_LOGO_BYTES:
        return f"a logo file may have at most {MAX_LOGO_BYTES // 1024} KiB"
    return None
