"""Helpers for the account-linking tests: reading the server-rendered forms, and a browser made of a test client."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

GOOGLE_REDIRECT = "https://oauth-redirect.googleusercontent.com/r/demo-smart-home-test"
SANDBOX_REDIRECT = "https://oauth-redirect-sandbox.googleusercontent.com/r/demo-smart-home-test"
CLIENT_ID = "google"
CLIENT_SECRET = "test-client-secret-" + "x" * 32
PASSWORD = "correct horse battery"


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Page:
    """What the tests read from a page: forms, labels, described-by targets and the text."""

    lang: str = ""
    title: str = ""
    headings: list[tuple[str, str]] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    inputs: list[dict[str, str]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    text: str = ""
    scripts: int = 0

    def form(self, step: str) -> Form:
        return next(form for form in self.forms if form.fields.get("step") == step)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: list[tuple[str, dict[str, str]]] = []
        self._texts: dict[int, list[str]] = {}
        self._label_for: str | None = None
        self._all_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.page.lang = attributes.get("lang", "")
        if tag == "script":
            self.page.scripts += 1
        if tag == "form":
            self.page.forms.append(Form(attributes.get("action", ""), attributes.get("method", "get").lower()))
        if tag == "input":
            self.page.inputs.append(attributes)
            if self.page.forms and attributes.get("name"):
                self.page.forms[-1].fields[attributes["name"]] = attributes.get("value", "")
        if tag == "button" and self.page.forms and attributes.get("name"):
            self.page.forms[-1].buttons.append((attributes["name"], attributes.get("value", "")))
        if tag in ("input", "meta", "br", "link"):
            return
        self._open.append((tag, attributes))
        self._texts[len(self._open)] = []

    def handle_endtag(self, tag: str) -> None:
        if not self._open or tag in ("input", "meta", "br", "link"):
            return
        depth = len(self._open)
        opened, attributes = self._open.pop()
        text = " ".join("".join(self._texts.pop(depth, [])).split())
        if self._open:
            self._texts[len(self._open)].append(text + " ")
        if opened in ("h1", "h2", "h3"):
            self.page.headings.append((opened, text))
        if opened == "title":
            self.page.title = text
        if opened == "label":
            self.page.labels[attributes.get("for", "")] = text
        if attributes.get("id"):
            self.page.ids[attributes["id"]] = text

    def handle_data(self, data: str) -> None:
        if self._open:
            self._texts[len(self._open)].append(data)
        self._all_text.append(data)

    def close(self) -> None:
        super().close()
        self.page.text = " ".join(" ".join(self._all_text).split())


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_params(**changes: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": GOOGLE_REDIRECT,
        "state": "st/ä t&e=1",
    }
    params.update(changes)
    return {name: value for name, value in params.items() if value is not None}


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


class LinkingBrowser:
    """A person at a browser, as far as the test client can be one: it keeps cookies and submits the forms."""

    def __init__(self, app: Any, address: str = "198.51.100.7", base_url: str = "http://localhost") -> None:
        self.client = app.test_client()
        self.last: Any = None
        # Where the person is, as Cloud Run's front end says it (the X-Forwarded-For hop it appends).
        self.headers: dict[str, str] = {"X-Forwarded-For": address}
        if base_url.startswith("https://"):
            self.headers["X-Forwarded-Proto"] = "https"
        self.base_url = base_url

    def get(self, path: str) -> Any:
        self.last = self.client.get(path, headers=self.headers, base_url=self.base_url)
        return self.last

    def post(self, path: str, data: dict[str, str]) -> Any:
        self.last = self.client.post(path, data=data, headers=self.headers, base_url=self.base_url)
        return self.last

    def open(self, params: dict[str, str] | str) -> Any:
        query = params if isinstance(params, str) else urlencode(params)
        return self.get(f"/?{query}")

    def cookie(self, name: str) -> str | None:
        found = self.client.get_cookie(name, domain="localhost")
        return found.value if found is not None else None

    def page(self) -> Page:
        return read_page(self.last.get_data(as_text=True))

    def submit(self, step: str, button: tuple[str, str] | None = None, **values: str) -> Any:
        form = self.page().form(step)
        assert form.method == "post"
        assert form.action.startswith("?")
        data = {**form.fields, **values}
        if button:
            assert button in form.buttons, form.buttons
            data[button[0]] = button[1]
        return self.post(f"/{form.action}", data)

    def follow(self) -> Any:
        """Follows a 303 back to the authorization request (the Location is relative: `?query`)."""
        assert self.last.status_code == 303, self.last.status_code
        location = self.last.headers["Location"]
        assert location.startswith("?")
        return self.get(f"/{location}")

    def sign_in(self, email: str, password: str = PASSWORD) -> Any:
        response = self.submit("sign_in", email=email, password=password)
        return self.follow() if response.status_code == 303 else response

    def consent(self, decision: str = "allow") -> Any:
        return self.submit("consent", button=("decision", decision))

    def link(self, email: str, params: dict[str, str] | None = None, password: str = PASSWORD) -> str:
        """The whole flow: open, sign in, allow; returns the code from the redirect."""
        self.open(params or authorize_params())
        assert self.last.status_code == 200, self.last.get_data(as_text=True)[:500]
        self.sign_in(email, password)
        assert self.last.status_code == 200, self.last.get_data(as_text=True)[:500]
        response = self.consent("allow")
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return query_of(response.headers["Location"])["code"]
