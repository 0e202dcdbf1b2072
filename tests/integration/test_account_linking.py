"""Account linking through the real `authorize` and `token` functions (functions-framework test clients) on the
Firestore emulator: every grant, every RFC 6749 error path, the pages, and the token store the fulfillment reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.core import tokens
from functions.linking import model as linking
from functions.linking.throttling import DEFAULT_LIMITS
from tests.integration.conftest import REPO_ROOT
from tests.integration.linking_helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    GOOGLE_REDIRECT,
    PASSWORD,
    SANDBOX_REDIRECT,
    LinkingBrowser,
    authorize_params,
    pkce_pair,
    query_of,
    read_page,
)
from tests.schema_oracle import oracle
from tools.google import disconnect_request, sync_request

pytestmark = pytest.mark.emulator

STATE = authorize_params()["state"]
ATTACKER_IP = "203.0.113.66"


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def exchange(token_client: Any, code: str, auth: str = "body", **extra: str) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": GOOGLE_REDIRECT, **extra}
    headers = {}
    if auth == "body":
        data.update(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    elif auth == "basic":
        headers = basic()
    return token_client.post("/", data=data, headers=headers)


def refresh(token_client: Any, refresh_token: str, auth: str = "basic", **extra: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    headers = {}
    if auth == "body":
        data.update(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    elif auth == "basic":
        headers = basic()
    return token_client.post("/", data=data, headers=headers)


def assert_oauth_error(response: Any, error: str, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description", "error_uri"}
    return dict(body)


def token_documents(db: Any) -> dict[str, dict[str, Any]]:
    return {snap.id: snap.to_dict() for snap in db.collection("tokens").stream()}


def sync_as(fulfillment_app: Any, access_token: str) -> tuple[int, Any]:
    response = fulfillment_app.post(
        "/", json=sync_request("req-link"), headers={"Authorization": f"Bearer {access_token}"}
    )
    return response.status_code, response.get_json()


@pytest.fixture(scope="session")
def authorize_app(firestore_emulator: object) -> Any:
    import functions_framework

    return functions_framework.create_app(target="authorize", source=str(REPO_ROOT / "main.py"))


@pytest.fixture(scope="session")
def token_app(firestore_emulator: object) -> Any:
    import functions_framework

    return functions_framework.create_app(target="token", source=str(REPO_ROOT / "main.py"))


@pytest.fixture
def linking_clock(firestore_db: object) -> Iterator[list[int]]:
    """The linking service's clock, as a one-element list the test may move (ms)."""
    import time

    from functions.linking.wiring import default_service

    service = default_service()
    now = [int(time.time() * 1000)]
    original = service.clock
    service.clock = lambda: now[0]
    yield now
    service.clock = original


@pytest.fixture
def google_client(firestore_db: object) -> Any:
    from functions.linking import model as linking
    from functions.linking.store import FirestoreClientRegistry

    client = linking.OAuthClient(
        CLIENT_ID, "Google Home", linking.hash_client_secret(CLIENT_SECRET), (GOOGLE_REDIRECT, SANDBOX_REDIRECT)
    )
    FirestoreClientRegistry().add(client)
    return client


@pytest.fixture
def ada(firestore_db: object) -> Any:
    from functions.linking.store import FirestoreUserDirectory

    return FirestoreUserDirectory().add("ada@example.com", PASSWORD)


@pytest.fixture
def browser(authorize_app: Any, google_client: Any) -> LinkingBrowser:
    return LinkingBrowser(authorize_app)


@pytest.fixture
def token_client(token_app: Any) -> Any:
    return token_app.test_client()


@pytest.fixture
def linked(browser: LinkingBrowser, ada: Any, token_client: Any) -> dict[str, Any]:
    """Ada linked through the pages: the token response."""
    response = exchange(token_client, browser.link(ada.email))
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.get_json())


# The authorization endpoint: pages


def test_the_sign_in_page_is_accessible_and_protected(browser: LinkingBrowser) -> None:
    response = browser.open(authorize_params())
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "img-src" not in response.headers["Content-Security-Policy"], "no logo set, no image allowed"
    assert "script-src" not in response.headers["Content-Security-Policy"], "default-src 'none': no script"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Language"] == "en"
    page = browser.page()
    assert page.lang == "en"
    assert page.scripts == 0
    assert [level for level, _ in page.headings].count("h1") == 1
    assert "Google Home" in page.text
    visible = [field for field in page.inputs if field.get("type") != "hidden"]
    assert {field["name"] for field in visible} == {"email", "password"}
    for field in visible:
        assert page.labels.get(field["id"]), f"{field['id']} has no label"
        assert "required" in field
    assert page.labels["email"] == "E-mail address"
    assert {f["name"]: f["autocomplete"] for f in visible} == {"email": "username", "password": "current-password"}
    assert all(form.fields.get("csrf_token") for form in page.forms)
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("linking_csrf=") and "HttpOnly" in c and "SameSite=Lax" in c for c in cookies)


def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(browser: LinkingBrowser, ada: Any) -> None:
    browser.open(authorize_params())
    wrong = browser.submit("sign_in", email=ada.email, password="not the password")
    wrong_page = browser.page()
    unknown = browser.submit("sign_in", email="nobody@example.com", password="not the password")
    unknown_page = browser.page()
    assert wrong.status_code == unknown.status_code == 400
    message = "The e-mail address or password is incorrect."
    assert wrong_page.ids["form-error"] == unknown_page.ids["form-error"] == message
    for page in (wrong_page, unknown_page):
        fields = {field["name"]: field for field in page.inputs if field.get("type") != "hidden"}
        for name in ("email", "password"):
            assert "form-error" in fields[name]["aria-describedby"].split()
            assert fields[name]["aria-invalid"] == "true"
        assert "value" not in fields["password"]
    assert {f["name"]: f.get("value") for f in wrong_page.inputs}["email"] == ada.email
    assert not any(c.startswith("linking_session=") for c in wrong.headers.getlist("Set-Cookie"))


def test_missing_fields_are_named_next_to_them(browser: LinkingBrowser) -> None:
    browser.open(authorize_params())
    response = browser.submit("sign_in", email="", password="")
    assert response.status_code == 400
    page = browser.page()
    assert page.ids["email-error"] == "Enter your e-mail address."
    assert page.ids["password-error"] == "Enter your password."
    fields = {field["name"]: field for field in page.inputs}
    assert fields["email"]["aria-describedby"] == "email-error"
    assert fields["password"]["aria-describedby"] == "password-error"


def test_an_attackers_failures_hold_the_attacker_back_and_not_the_owner(
    authorize_app: Any, browser: LinkingBrowser, ada: Any
) -> None:
    attacker = LinkingBrowser(authorize_app, address=ATTACKER_IP)
    attacker.open(authorize_params())
    for _ in range(DEFAULT_LIMITS.account_ip.max_count):
        assert attacker.submit("sign_in", email=ada.email, password="guess-password-41z").status_code == 400
    held = attacker.submit("sign_in", email=ada.email, password=PASSWORD)
    assert held.status_code == 429
    assert 0 < int(held.headers["Retry-After"]) <= DEFAULT_LIMITS.account_ip.window_s
    assert attacker.page().ids["form-error"].startswith("Too many sign-in attempts. Try again in ")
    # Unknown accounts are held back the same way: the answer says nothing about which accounts exist.
    for _ in range(DEFAULT_LIMITS.account_ip.max_count):
        attacker.submit("sign_in", email="ghost@example.com", password="guess-password-41z")
    ghost = attacker.submit("sign_in", email="ghost@example.com", password=PASSWORD)
    assert ghost.status_code == 429
    assert attacker.page().ids["form-error"] == read_page(held.get_data(as_text=True)).ids["form-error"]
    # The owner, on a browser that never signed in and from home, is not held back.
    browser.open(authorize_params())
    assert browser.sign_in(ada.email).status_code == 200
    assert browser.page().form("consent")


def test_a_browser_that_signed_in_before_gets_in_while_the_account_is_attacked_from_everywhere(
    authorize_app: Any, browser: LinkingBrowser, ada: Any
) -> None:
    browser.open(authorize_params())
    browser.sign_in(ada.email)
    assert browser.cookie("linking_device"), "a device cookie after the sign-in"
    assert ada.email not in str(browser.cookie("linking_device")), "it names no account"
    browser.submit("switch_account")
    for n in range(DEFAULT_LIMITS.account.max_count):  # guessers on as many addresses
        guesser = LinkingBrowser(authorize_app, address=f"203.0.113.{n + 1}")
        guesser.open(authorize_params())
        assert guesser.submit("sign_in", email=ada.email, password="guess-password-41z").status_code == 400
    new_browser = LinkingBrowser(authorize_app)
    new_browser.open(authorize_params())
    waited = new_browser.submit("sign_in", email=ada.email, password=PASSWORD)
    assert waited.status_code == 429, "a browser that never signed in waits, and is told how long"
    assert int(waited.headers["Retry-After"]) > 0
    browser.open(authorize_params())
    assert browser.sign_in(ada.email).status_code == 200, "the owner's browser is not held back"
    assert browser.page().form("consent")


def test_one_client_cannot_check_the_passwords_of_many_accounts(authorize_app: Any, google_client: Any) -> None:
    attacker = LinkingBrowser(authorize_app, address=ATTACKER_IP)
    attacker.open(authorize_params())
    statuses = [
        attacker.submit("sign_in", email=f"user{n}@example.com", password="guess-password-41z").status_code
        for n in range(DEFAULT_LIMITS.ip.max_count + 5)
    ]
    assert statuses == [400] * DEFAULT_LIMITS.ip.max_count + [429] * 5
    # Whatever the client writes before the front end's entry is not believed.
    spoofing = LinkingBrowser(authorize_app, address=f"192.0.2.77, {ATTACKER_IP}")
    spoofing.open(authorize_params())
    assert spoofing.submit("sign_in", email="new@example.com", password="guess-password-41z").status_code == 429


def test_concurrent_sign_ins_on_one_account_never_fail(authorize_app: Any, ada: Any, google_client: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    browsers = [LinkingBrowser(authorize_app, address=ATTACKER_IP) for _ in range(12)]
    for browser in browsers:
        browser.open(authorize_params())

    def attempt(browser: LinkingBrowser) -> int:
        return int(browser.submit("sign_in", email=ada.email, password="guess-password-41z").status_code)

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(attempt, browsers))
    assert sorted(set(statuses)) == [400, 429], statuses
    assert statuses.count(400) == DEFAULT_LIMITS.account_ip.max_count


def test_forms_without_a_valid_csrf_token_are_refused(
    authorize_app: Any, browser: LinkingBrowser, ada: Any, firestore_db: Any
) -> None:
    browser.open(authorize_params())
    form = browser.page().form("sign_in")
    for token in ("", "forged", form.fields["csrf_token"][:-2] + "AA", "ünïcode"):
        data = {**form.fields, "csrf_token": token, "email": ada.email, "password": PASSWORD}
        response = browser.client.post(f"/{form.action}", data=data)
        assert response.status_code == 403
        assert "expired" in read_page(response.get_data(as_text=True)).ids["form-error"]
        assert not any(c.startswith("linking_session=") for c in response.headers.getlist("Set-Cookie"))
    # A token from another browser does not fit this browser's cookie.
    other = LinkingBrowser(authorize_app)
    data = {**form.fields, "email": ada.email, "password": PASSWORD}
    assert other.client.post(f"/{form.action}", data=data).status_code == 403
    # Nothing was counted against the account either.
    assert not list(firestore_db.collection("signInAttempts").stream())


def test_consent_needs_a_session_and_a_csrf_token(browser: LinkingBrowser, ada: Any, authorize_app: Any) -> None:
    browser.open(authorize_params())
    browser.sign_in(ada.email)
    consent = browser.page().form("consent")
    assert ada.email in browser.page().text
    forged = browser.client.post(f"/{consent.action}", data={**consent.fields, "csrf_token": "x", "decision": "allow"})
    assert forged.status_code == 403
    assert "Location" not in forged.headers
    # Without the session cookie, the consent form only leads back to the sign-in page.
    stranger = LinkingBrowser(authorize_app)
    stranger.open(authorize_params())
    csrf = stranger.page().form("sign_in").fields["csrf_token"]
    response = stranger.client.post(
        f"/{consent.action}", data={"step": "consent", "csrf_token": csrf, "decision": "allow"}
    )
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert stranger.page().form("sign_in")


def test_a_forged_session_cookie_is_ignored(browser: LinkingBrowser, ada: Any) -> None:
    import time

    for value in (f"{ada.agent_user_id}.{int(time.time()) + 600}.forged", "ünïcode.1.2", "garbage"):
        browser.client.set_cookie("linking_session", value)
        browser.open(authorize_params())
        assert browser.page().form("sign_in")


def test_switching_accounts_signs_out(browser: LinkingBrowser, ada: Any) -> None:
    browser.open(authorize_params())
    browser.sign_in(ada.email)
    browser.submit("switch_account")
    browser.follow()
    assert browser.page().form("sign_in")


def test_a_replayed_session_cookie_gives_no_second_code(
    authorize_app: Any, browser: LinkingBrowser, ada: Any, firestore_db: Any
) -> None:
    from functions.linking.store import FirestoreClientRegistry

    other_secret = "other-secret-" + "y" * 32
    FirestoreClientRegistry().add(
        linking.OAuthClient("other", "Other", linking.hash_client_secret(other_secret), (GOOGLE_REDIRECT,))
    )
    browser.open(authorize_params())
    browser.sign_in(ada.email)
    stolen = browser.cookie("linking_session")
    assert stolen

    def replay(params: dict[str, str]) -> LinkingBrowser:
        thief = LinkingBrowser(authorize_app)
        thief.client.set_cookie("linking_session", stolen, domain="localhost")
        assert thief.open(params).status_code == 200
        form = thief.page().form("sign_in")  # not the consent page
        response = thief.post(f"/{form.action}", {**form.fields, "step": "consent", "decision": "allow"})
        assert "Location" not in response.headers
        assert thief.page().form("sign_in")
        return thief

    replay(authorize_params(client_id="other"))  # bound to Google's request, not another client's
    browser.open(authorize_params())
    assert browser.consent("allow").status_code == 302
    assert browser.cookie("linking_session") is None, "the consent ended the session"
    assert [d for d in token_documents(firestore_db).values() if d["kind"] == "session"] == [], "on the server too"
    replay(authorize_params())  # in a fresh browser, after the consent
    replay(authorize_params(client_id="other"))


def test_a_session_is_good_for_the_authorization_request_it_was_made_for(browser: LinkingBrowser, ada: Any) -> None:
    _, challenge = pkce_pair()
    browser.open(authorize_params(state="first"))
    browser.sign_in(ada.email)
    assert browser.page().form("consent")
    for changed in (
        authorize_params(state="second"),
        authorize_params(state="first", redirect_uri=SANDBOX_REDIRECT),
        authorize_params(state="first", code_challenge=challenge, code_challenge_method="S256"),
    ):
        assert browser.open(changed).status_code == 200
        assert browser.page().form("sign_in"), changed
    browser.open(authorize_params(state="first"))
    response = browser.consent("allow")
    assert query_of(response.headers["Location"])["state"] == "first"


def test_over_https_the_cookies_carry_the_host_prefix(authorize_app: Any, ada: Any, google_client: Any) -> None:
    browser = LinkingBrowser(authorize_app, base_url="https://localhost")
    response = browser.open(authorize_params())
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("__Host-linking_csrf=") and "Secure" in c and "Path=/" in c for c in cookies), cookies
    assert not any("Domain=" in c for c in cookies)
    signed_in = browser.submit("sign_in", email=ada.email, password=PASSWORD)
    names = {c.split("=")[0] for c in signed_in.headers.getlist("Set-Cookie")}
    assert names >= {"__Host-linking_session", "__Host-linking_device"}
    browser.follow()
    assert browser.consent("allow").headers["Location"].startswith(GOOGLE_REDIRECT + "?code=")


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A brand: name, a logo shipped with the deployment, an accent colour and every link."""
    settings = {
        "ACCOUNT_LINKING_SERVICE_NAME": "Acme Home",
        "ACCOUNT_LINKING_LOGO": "functions/linking/static/logo-example.svg",
        "ACCOUNT_LINKING_ACCENT_COLOR": "#0b8043",
        "ACCOUNT_LINKING_PRIVACY_URL": "https://acme.example/privacy",
        "ACCOUNT_LINKING_TERMS_URL": "https://acme.example/terms",
        "ACCOUNT_LINKING_SUPPORT_URL": "https://acme.example/help",
        "ACCOUNT_LINKING_PASSWORD_RESET_URL": "https://acme.example/reset",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings


def links_of(html: str) -> dict[str, str]:
    import re

    return {text: href for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', html)}


def test_the_pages_carry_the_brand(browser: LinkingBrowser, ada: Any, acme: dict[str, str]) -> None:
    response = browser.open(authorize_params())
    assert response.headers["Content-Security-Policy"].endswith("; img-src 'self'"), "exactly the logo"
    html = response.get_data(as_text=True)
    assert '<img class="logo" src="?asset=logo" alt="Acme Home">' in html
    assert "--accent: #0b8043; --accent-text: #ffffff;" in html
    assert links_of(html) == {
        "Forgot your password?": acme["ACCOUNT_LINKING_PASSWORD_RESET_URL"],
        "Privacy policy": acme["ACCOUNT_LINKING_PRIVACY_URL"],
        "Terms of service": acme["ACCOUNT_LINKING_TERMS_URL"],
        "Help": acme["ACCOUNT_LINKING_SUPPORT_URL"],
    }
    assert browser.page().headings[0] == ("h1", "Sign in to link your Acme Home account")
    logo = browser.open("asset=logo")
    assert logo.status_code == 200
    assert logo.headers["Content-Type"] == "image/svg+xml"
    assert logo.get_data() == (REPO_ROOT / acme["ACCOUNT_LINKING_LOGO"]).read_bytes()
    assert "sandbox" in logo.headers["Content-Security-Policy"]
    assert logo.headers["X-Content-Type-Options"] == "nosniff"
    assert browser.open("asset=main.py").status_code == 404
    browser.open(authorize_params())
    browser.sign_in(ada.email)
    assert "Acme Home" in browser.page().ids["link-statement"]


def test_a_logo_url_is_named_in_the_csp_and_nothing_is_served(
    browser: LinkingBrowser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCOUNT_LINKING_LOGO", "https://cdn.acme.example/logo.png")
    response = browser.open(authorize_params())
    assert response.headers["Content-Security-Policy"].endswith("; img-src https://cdn.acme.example/logo.png")
    assert 'src="https://cdn.acme.example/logo.png"' in response.get_data(as_text=True)
    assert browser.open("asset=logo").status_code == 404


@pytest.mark.parametrize(
    ("accept_language", "lang", "heading", "button"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de", "Melden Sie sich an, um Ihr Smart Home-Konto zu verknüpfen", "Anmelden"),
        ("fr-CA", "fr", "Connectez-vous pour associer votre compte Smart Home", "Se connecter"),
        ("es-419", "es", "Inicia sesión para vincular tu cuenta de Smart Home", "Iniciar sesión"),
        ("ja", "ja", "ログインして Smart Home アカウントをリンク", "ログイン"),
        ("ko-KR", "ko", "로그인하여 Smart Home 계정 연결", "로그인"),
        ("zh-CN", "zh-Hans", "登录以关联您的 Smart Home 帐号", "登录"),
        ("id", "id", "Masuk untuk menautkan akun Smart Home Anda", "Masuk"),
        ("pt-BR", "en", "Sign in to link your Smart Home account", "Sign in"),
    ],
)
def test_the_pages_speak_the_browsers_language(
    browser: LinkingBrowser, ada: Any, accept_language: str, lang: str, heading: str, button: str
) -> None:
    browser.headers["Accept-Language"] = accept_language
    response = browser.open(authorize_params())
    assert response.headers["Content-Language"] == lang
    assert response.headers["Vary"] == "Accept-Language"
    page = browser.page()
    assert page.lang == lang
    assert page.headings[0] == ("h1", heading)
    assert f'class="primary">{button}</button>' in response.get_data(as_text=True)
    wrong = browser.submit("sign_in", email=ada.email, password="not the password")
    assert wrong.status_code == 400
    if lang != "en":
        assert browser.page().ids["form-error"] != "The e-mail address or password is incorrect."


def test_unknown_client_gets_an_error_page_and_no_redirect(browser: LinkingBrowser) -> None:
    for params in (authorize_params(client_id="intruder"), authorize_params(client_id=None)):
        response = browser.open(params)
        assert response.status_code == 400
        assert "Location" not in response.headers
        page = browser.page()
        assert page.lang == "en"
        assert page.forms == []
        assert page.headings[0][0] == "h1"
    assert browser.page().headings[0][1] == "Link request incomplete"
    browser.open(authorize_params(client_id="intruder"))
    assert browser.page().headings[0][1] == "Unknown app"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/r/demo-smart-home-test",
        GOOGLE_REDIRECT + "/",
        GOOGLE_REDIRECT + "?next=https://evil.example",
        GOOGLE_REDIRECT.upper(),
        GOOGLE_REDIRECT.replace("https", "http"),
        GOOGLE_REDIRECT[:-1],
    ],
)
def test_a_redirect_uri_not_registered_exactly_gets_an_error_page(browser: LinkingBrowser, redirect_uri: str) -> None:
    response = browser.open(authorize_params(redirect_uri=redirect_uri))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert browser.page().headings[0][1] == "Unknown return address"


def test_both_registered_redirect_uris_work_and_state_comes_back_unchanged(
    browser: LinkingBrowser, ada: Any, token_client: Any
) -> None:
    odd_state = "a b+c/d?e=f&g=%25 é"
    for redirect in (GOOGLE_REDIRECT, SANDBOX_REDIRECT):
        browser.open(authorize_params(redirect_uri=redirect, state=odd_state))
        browser.sign_in(ada.email)
        response = browser.consent("allow")
        location = response.headers["Location"]
        assert location.startswith(redirect + "?")
        assert query_of(location)["state"] == odd_state
        response = exchange(token_client, query_of(location)["code"], redirect_uri=redirect)
        assert response.status_code == 200


def test_a_redirect_uri_may_be_left_out_only_when_there_is_one(
    browser: LinkingBrowser, ada: Any, firestore_db: Any
) -> None:
    response = browser.open(authorize_params(redirect_uri=None))
    assert response.status_code == 400  # two are registered: which one is ambiguous
    assert "Location" not in response.headers
    firestore_db.collection("oauthClients").document(CLIENT_ID).update({"redirectUris": [GOOGLE_REDIRECT]})
    browser.open(authorize_params(redirect_uri=None))
    browser.sign_in(ada.email)
    assert browser.consent().headers["Location"].startswith(GOOGLE_REDIRECT + "?code=")


def test_the_consent_page_says_what_google_may_do_in_its_words(browser: LinkingBrowser, ada: Any) -> None:
    browser.open(authorize_params())
    browser.sign_in(ada.email)
    page = browser.page()
    assert page.headings[0] == ("h1", "Link your Smart Home account to Google Home")
    assert page.ids["link-statement"] == (
        "Your Smart Home account will be linked to Google Home. Google Home will be able to control your devices."
    )
    html = browser.last.get_data(as_text=True)
    assert '<button type="submit" name="decision" value="allow" class="primary">Agree and link</button>' in html
    assert '<button type="submit" name="decision" value="deny" class="secondary">Cancel</button>' in html
    assert page.scripts == 0


def test_cancel_redirects_with_access_denied(browser: LinkingBrowser, ada: Any, firestore_db: Any) -> None:
    browser.open(authorize_params())
    browser.sign_in(ada.email)
    response = browser.consent("deny")
    assert response.status_code == 302
    assert query_of(response.headers["Location"]) == {
        "error": "access_denied",
        "error_description": "The resource owner or authorization server denied the request",
        "state": STATE,
    }
    assert not token_documents(firestore_db), "no code, and the session is used up"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "unsupported_response_type"),
        ({"scope": "everything"}, "invalid_scope"),
        ({"code_challenge": "a" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "a" * 43}, "invalid_request"),  # no method means plain
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
    ],
)
def test_invalid_requests_from_a_known_client_are_redirected_with_the_error(
    browser: LinkingBrowser, changes: dict[str, str | None], error: str
) -> None:
    response = browser.open(authorize_params(**changes))
    assert response.status_code == 302
    returned = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(GOOGLE_REDIRECT + "?")
    assert returned["error"] == error
    assert returned["state"] == STATE
    assert "code" not in returned


def test_a_client_not_allowed_the_code_grant_is_redirected_with_unauthorized_client(
    browser: LinkingBrowser, firestore_db: Any
) -> None:
    firestore_db.collection("oauthClients").document(CLIENT_ID).update({"grantTypes": ["refresh_token"]})
    response = browser.open(authorize_params())
    assert query_of(response.headers["Location"])["error"] == "unauthorized_client"


def test_a_repeated_parameter_is_refused_without_redirect(browser: LinkingBrowser) -> None:
    response = browser.open("response_type=code&client_id=google&state=a&state=b&redirect_uri=" + GOOGLE_REDIRECT)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_behind_an_https_front_end_only(token_client: Any, google_client: Any) -> None:
    """Cloud Run hands the function plain http and says https in X-Forwarded-Proto; Authlib refuses plain http
    anywhere but the loopback."""
    data = {"grant_type": "refresh_token", "refresh_token": "rt.YWRh.forged-refresh-token"}
    public = "http://europe-west1-demo.cloudfunctions.net"
    assert_oauth_error(token_client.post("/", data=data, headers=basic(), base_url=public), "insecure_transport")
    forwarded = token_client.post("/", data=data, headers={**basic(), "X-Forwarded-Proto": "https"}, base_url=public)
    assert_oauth_error(forwarded, "invalid_grant")


def test_authorize_accepts_get_and_post_only(authorize_app: Any) -> None:
    response = authorize_app.test_client().put("/")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


# The token endpoint: authorization_code


def test_code_exchange_issues_tokens_into_the_fulfillment_store(
    linked: dict[str, Any], firestore_db: Any, fulfillment_app: Any, ada: Any
) -> None:
    assert set(linked) == {"token_type", "access_token", "expires_in", "refresh_token"}
    assert linked["token_type"] == "Bearer"
    assert linked["expires_in"] == 3600
    assert tokens.parse(linked["access_token"]) == (tokens.ACCESS, ada.agent_user_id)
    assert tokens.parse(linked["refresh_token"]) == (tokens.REFRESH, ada.agent_user_id)
    documents = token_documents(firestore_db)
    by_kind = {document["kind"]: (token_hash, document) for token_hash, document in documents.items()}
    assert set(by_kind) == {"ac", "at", "rt", "grant"}
    record_id, record = by_kind.pop("grant")
    assert record_id == linking.grant_record_id(by_kind["at"][1]["grantId"])
    assert {name: record[name] for name in ("agentUserId", "clientId", "grantId")} == {
        "agentUserId": ada.agent_user_id,
        "clientId": CLIENT_ID,
        "grantId": by_kind["rt"][1]["grantId"],
    }
    assert record["lastUsedAt"] == record["createdAt"]
    assert by_kind["at"][0] == hashlib.sha256(linked["access_token"].encode()).hexdigest()
    assert by_kind["rt"][0] == hashlib.sha256(linked["refresh_token"].encode()).hexdigest()
    for _, document in by_kind.values():
        assert document["agentUserId"] == ada.agent_user_id
        assert document["clientId"] == CLIENT_ID
        assert document["revoked"] is False
    access_life = by_kind["at"][1]["expiresAt"] - by_kind["at"][1]["createdAt"]
    assert access_life.total_seconds() == pytest.approx(3600, abs=1)
    code_life = by_kind["ac"][1]["expiresAt"] - by_kind["ac"][1]["createdAt"]
    assert code_life.total_seconds() == pytest.approx(600, abs=1)
    assert by_kind["ac"][1]["usedAt"] is not None
    raw = json.dumps(documents, default=str)
    for secret in (linked["access_token"], linked["refresh_token"], CLIENT_SECRET, PASSWORD):
        assert secret not in raw
        assert secret.split(".")[-1] not in raw
    user = firestore_db.collection("users").document(ada.agent_user_id).get().to_dict()
    assert user["linked"] is True
    status, body = sync_as(fulfillment_app, linked["access_token"])
    assert status == 200
    oracle().assert_response("sync", body)
    assert body["payload"]["agentUserId"] == ada.agent_user_id


def test_code_exchange_with_http_basic(browser: LinkingBrowser, ada: Any, token_client: Any) -> None:
    response = exchange(token_client, browser.link(ada.email), auth="basic")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_a_code_is_single_use_and_its_replay_revokes_its_tokens(
    browser: LinkingBrowser, ada: Any, token_client: Any, fulfillment_app: Any, firestore_db: Any
) -> None:
    code = browser.link(ada.email)
    first = exchange(token_client, code).get_json()
    assert_oauth_error(exchange(token_client, code), "invalid_grant")
    kinds = sorted(document["kind"] for document in token_documents(firestore_db).values())
    assert kinds == [], "the replay revoked the code's access and refresh tokens"
    assert sync_as(fulfillment_app, first["access_token"])[0] == 401
    assert_oauth_error(refresh(token_client, first["refresh_token"]), "invalid_grant")


def test_concurrent_exchanges_of_one_code_issue_tokens_once(
    browser: LinkingBrowser, ada: Any, token_app: Any, firestore_db: Any
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    code = browser.link(ada.email)
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda _: exchange(token_app.test_client(), code), range(4)))
    statuses = sorted(response.status_code for response in responses)
    # One wins; the others are the concurrent use (invalid_grant), or, on an emulator so loaded that a loser's
    # transaction loses every attempt before the winner commits, told to try again (503): never a 500.
    assert statuses.count(200) <= 1, statuses
    assert set(statuses) <= {200, 400, 503}, statuses
    expected_error = {400: "invalid_grant", 503: "temporarily_unavailable"}
    assert all(r.get_json()["error"] == expected_error[r.status_code] for r in responses if r.status_code != 200)
    # One set of tokens at most: a loser that came after the winner's commit took it for a replay and revoked it.
    access_tokens = [d for d in token_documents(firestore_db).values() if d["kind"] == "at"]
    assert len(access_tokens) <= 1
    if 200 not in statuses:  # every exchange lost its race: nothing was used up, so none may say invalid_grant
        assert 400 not in statuses, statuses
        assert exchange(token_app.test_client(), code).status_code == 200


def test_a_code_expires_after_ten_minutes(
    browser: LinkingBrowser, ada: Any, token_client: Any, linking_clock: list[int]
) -> None:
    code = browser.link(ada.email)
    linking_clock[0] += linking.CODE_TTL_S * 1000
    assert_oauth_error(exchange(token_client, code), "invalid_grant")


def test_a_code_is_bound_to_its_client_and_redirect_uri(browser: LinkingBrowser, ada: Any, token_client: Any) -> None:
    from functions.linking.store import FirestoreClientRegistry

    other_secret = "other-secret-" + "y" * 32
    FirestoreClientRegistry().add(
        linking.OAuthClient("other", "Other", linking.hash_client_secret(other_secret), (GOOGLE_REDIRECT,))
    )
    code = browser.link(ada.email)
    stolen = token_client.post(
        "/",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": GOOGLE_REDIRECT},
        headers=basic("other", other_secret),
    )
    assert_oauth_error(stolen, "invalid_grant")
    assert_oauth_error(exchange(token_client, code, redirect_uri=SANDBOX_REDIRECT), "invalid_grant")
    assert_oauth_error(exchange(token_client, code, redirect_uri=""), "invalid_grant")
    assert exchange(token_client, code).status_code == 200, "failed attempts did not use the code up"


@pytest.mark.parametrize("code", ["", "not-a-code", "ac.YWRh.forged", "at.YWRh.x"])
def test_an_unknown_code_is_an_invalid_grant(token_client: Any, google_client: Any, code: str) -> None:
    response = exchange(token_client, code)
    if code == "":
        assert_oauth_error(response, "invalid_request")
    else:
        assert_oauth_error(response, "invalid_grant")


def test_pkce_s256_is_honoured(browser: LinkingBrowser, ada: Any, token_client: Any) -> None:
    verifier, challenge = pkce_pair()
    params = authorize_params(code_challenge=challenge, code_challenge_method="S256")
    code = browser.link(ada.email, params)
    assert_oauth_error(exchange(token_client, code), "invalid_request")  # verifier missing
    assert_oauth_error(exchange(token_client, code, code_verifier=pkce_pair()[0]), "invalid_grant")
    assert_oauth_error(exchange(token_client, code, code_verifier="short"), "invalid_request")
    assert exchange(token_client, code, code_verifier=verifier).status_code == 200


def test_a_verifier_without_a_challenge_is_refused(browser: LinkingBrowser, ada: Any, token_client: Any) -> None:
    code = browser.link(ada.email)
    assert_oauth_error(exchange(token_client, code, code_verifier=pkce_pair()[0]), "invalid_request")


# The token endpoint: client authentication and request errors


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        ({"client_id": CLIENT_ID, "client_secret": "wrong-secret-7c1x"}, {}),
        ({"client_id": "intruder", "client_secret": CLIENT_SECRET}, {}),
        ({"client_id": CLIENT_ID}, {}),
        ({}, {}),
        ({}, basic(secret="wrong-secret-7c1x")),
        ({}, basic(client_id="intruder")),
        ({}, basic(secret="")),
        ({}, {"Authorization": "Basic !!!"}),
    ],
)
def test_client_authentication_failures_are_invalid_client(
    token_client: Any, google_client: Any, data: dict[str, str], headers: dict[str, str]
) -> None:
    for grant in ({"grant_type": "authorization_code", "code": "ac.x.y"}, {"grant_type": "refresh_token"}):
        response = token_client.post("/", data={**grant, **data}, headers=headers)
        # RFC 6749 5.2: 401 with WWW-Authenticate when the client tried HTTP Basic; 400 or 401 otherwise.
        status = 401 if headers else response.status_code
        assert_oauth_error(response, "invalid_client", status)
        assert status in (400, 401)
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_two_client_authentication_methods_at_once_are_refused(
    browser: LinkingBrowser, ada: Any, token_client: Any
) -> None:
    code = browser.link(ada.email)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": GOOGLE_REDIRECT,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert_oauth_error(token_client.post("/", data=data, headers=basic()), "invalid_request")


@pytest.mark.parametrize("grant_type", ["password", "client_credentials", "implicit", "urn:x"])
def test_other_grant_types_are_unsupported(token_client: Any, google_client: Any, grant_type: str) -> None:
    response = token_client.post("/", data={"grant_type": grant_type}, headers=basic())
    assert_oauth_error(response, "unsupported_grant_type")


def test_malformed_token_requests_are_invalid_requests(token_client: Any, google_client: Any) -> None:
    assert_oauth_error(token_client.post("/", data={}, headers=basic()), "invalid_request")
    as_json = token_client.post("/", json={"grant_type": "refresh_token", "refresh_token": "x"}, headers=basic())
    assert_oauth_error(as_json, "invalid_request")
    missing_code = token_client.post("/", data={"grant_type": "authorization_code"}, headers=basic())
    assert_oauth_error(missing_code, "invalid_request")
    missing_refresh = token_client.post("/", data={"grant_type": "refresh_token"}, headers=basic())
    assert_oauth_error(missing_refresh, "invalid_request")
    twice = token_client.post(
        "/",
        data="grant_type=refresh_token&refresh_token=a&refresh_token=b",
        headers=basic(),
        content_type="application/x-www-form-urlencoded",
    )
    assert_oauth_error(twice, "invalid_request")
    huge = token_client.post("/", data={"grant_type": "refresh_token", "refresh_token": "x" * 20_000}, headers=basic())
    assert_oauth_error(huge, "invalid_request", 413)
    get = token_client.get("/?grant_type=refresh_token")
    assert_oauth_error(get, "invalid_request", 405)
    assert get.headers["Allow"] == "POST"


# The token endpoint: refresh_token


def test_refresh_rotates_and_the_new_access_token_works(
    linked: dict[str, Any], token_client: Any, fulfillment_app: Any, firestore_db: Any
) -> None:
    response = refresh(token_client, linked["refresh_token"], auth="body")
    assert response.status_code == 200
    renewed = response.get_json()
    assert set(renewed) == {"token_type", "access_token", "expires_in", "refresh_token"}
    assert renewed["refresh_token"] != linked["refresh_token"]
    assert renewed["access_token"] != linked["access_token"]
    status, body = sync_as(fulfillment_app, renewed["access_token"])
    assert status == 200
    oracle().assert_response("sync", body)
    old = firestore_db.collection("tokens").document(tokens.hash_token(linked["refresh_token"])).get().to_dict()
    assert old["rotatedAt"] is not None
    kept = (old["expiresAt"] - old["rotatedAt"]).total_seconds()
    assert kept == pytest.approx(linking.REUSE_DETECTION_S, abs=1), "remembered, to recognise a reuse"
    assert renewed["refresh_token"] not in json.dumps(old, default=str), "the successor is kept sealed"
    assert refresh(token_client, renewed["refresh_token"], auth="basic").status_code == 200


def test_a_repeated_refresh_in_the_grace_window_gets_the_same_successor(
    linked: dict[str, Any], token_client: Any, linking_clock: list[int], firestore_db: Any
) -> None:
    first = linked["refresh_token"]
    answers = [refresh(token_client, first) for _ in range(3)]
    linking_clock[0] += (linking.REFRESH_GRACE_S - 1) * 1000
    answers.append(refresh(token_client, first))
    assert [answer.status_code for answer in answers] == [200] * 4, "Google's concurrent refreshes all work"
    bodies = [answer.get_json() for answer in answers]
    assert {(body["access_token"], body["refresh_token"]) for body in bodies} == {
        (bodies[0]["access_token"], bodies[0]["refresh_token"])
    }, "one successor: one chain, not three"
    assert bodies[3]["expires_in"] == 3600 - (linking.REFRESH_GRACE_S - 1)
    refresh_tokens = [d for d in token_documents(firestore_db).values() if d["kind"] == "rt"]
    assert len(refresh_tokens) == 2
    assert refresh(token_client, bodies[0]["refresh_token"]).status_code == 200


def test_a_rotated_refresh_token_used_after_the_window_revokes_its_grant(
    linked: dict[str, Any], token_client: Any, linking_clock: list[int], fulfillment_app: Any
) -> None:
    first = linked["refresh_token"]
    renewed = refresh(token_client, first).get_json()
    linking_clock[0] += linking.REFRESH_GRACE_S * 1000
    assert_oauth_error(refresh(token_client, first), "invalid_grant")
    # RFC 9700 4.14.2: whoever holds the chain now, thief or not, holds it no more.
    assert_oauth_error(refresh(token_client, renewed["refresh_token"]), "invalid_grant")
    assert sync_as(fulfillment_app, renewed["access_token"])[0] == 401


def test_refresh_errors(linked: dict[str, Any], token_client: Any, firestore_db: Any) -> None:
    from functions.linking.store import FirestoreClientRegistry

    assert_oauth_error(refresh(token_client, "rt.YWRh.forged"), "invalid_grant")
    assert_oauth_error(refresh(token_client, linked["access_token"]), "invalid_grant")
    assert_oauth_error(refresh(token_client, linked["refresh_token"], scope="devices"), "invalid_scope")
    other_secret = "other-secret-" + "y" * 32
    FirestoreClientRegistry().add(
        linking.OAuthClient("other", "Other", linking.hash_client_secret(other_secret), (GOOGLE_REDIRECT,))
    )
    stolen = token_client.post(
        "/",
        data={"grant_type": "refresh_token", "refresh_token": linked["refresh_token"]},
        headers=basic("other", other_secret),
    )
    assert_oauth_error(stolen, "invalid_grant")
    firestore_db.collection("oauthClients").document(CLIENT_ID).update({"grantTypes": ["authorization_code"]})
    assert_oauth_error(refresh(token_client, linked["refresh_token"]), "unauthorized_client")


def test_a_client_without_the_refresh_grant_gets_no_refresh_token(
    browser: LinkingBrowser, ada: Any, token_client: Any, firestore_db: Any
) -> None:
    firestore_db.collection("oauthClients").document(CLIENT_ID).update({"grantTypes": ["authorization_code"]})
    response = exchange(token_client, browser.link(ada.email))
    assert response.status_code == 200
    assert "refresh_token" not in response.get_json()


def test_scopes_registered_for_the_client_are_granted_and_kept(
    browser: LinkingBrowser, ada: Any, token_client: Any, firestore_db: Any
) -> None:
    firestore_db.collection("oauthClients").document(CLIENT_ID).update({"scopes": ["devices", "state"]})
    code = browser.link(ada.email, authorize_params(scope="devices"))
    issued = exchange(token_client, code).get_json()
    assert issued["scope"] == "devices"
    renewed = refresh(token_client, issued["refresh_token"], scope="devices")
    assert renewed.get_json()["scope"] == "devices"
    assert_oauth_error(refresh(token_client, renewed.get_json()["refresh_token"], scope="state"), "invalid_scope")


def test_a_deleted_account_can_no_longer_redeem_or_refresh(
    linked: dict[str, Any], browser: LinkingBrowser, token_client: Any, firestore_db: Any, ada: Any
) -> None:
    unused_code = browser.link(ada.email)
    for snap in firestore_db.collection("accounts").stream():
        snap.reference.delete()
    assert_oauth_error(refresh(token_client, linked["refresh_token"]), "invalid_grant")
    assert_oauth_error(exchange(token_client, unused_code), "invalid_grant")


# DISCONNECT and faults


def test_disconnect_of_the_only_link_revokes_the_refresh_tokens_too(
    linked: dict[str, Any], token_client: Any, fulfillment_app: Any, firestore_db: Any, ada: Any
) -> None:
    renewed = refresh(token_client, linked["refresh_token"]).get_json()
    response = fulfillment_app.post(
        "/", json=disconnect_request("req-bye"), headers={"Authorization": f"Bearer {renewed['access_token']}"}
    )
    assert response.status_code == 200
    assert [d for d in token_documents(firestore_db).values() if d["agentUserId"] == ada.agent_user_id] == []
    for refresh_token in (linked["refresh_token"], renewed["refresh_token"]):
        assert_oauth_error(refresh(token_client, refresh_token), "invalid_grant")
    user = firestore_db.collection("users").document(ada.agent_user_id).get().to_dict()
    assert user["linked"] is False


LAMP = {
    "id": "lamp-1",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Hall lamp"},
    "willReportState": True,
    "state": {"on": False},
}


@pytest.fixture
def report_state(firestore_db: Any, homegraph_standin: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Report State as the report_state function does it: a device's state message in; the count of reports
    Google (the HomeGraph stand-in) has had for the user out."""
    import time
    import uuid

    from functions.core import state_messages
    from functions.platform.homegraph import HomeGraphClient, RetryPolicy
    from functions.reporting import wiring
    from functions.reporting.pipeline import Reporter
    from functions.reporting.store import FirestoreReportStore
    from tests.unit.reporting_helpers import message_json

    monkeypatch.setenv("REPORT_WINDOW_MS", "50")
    client = HomeGraphClient(endpoint=homegraph_standin.url, timeout_s=1.0, retry=RetryPolicy(2, 0.05, 0.1))
    reporter = Reporter(FirestoreReportStore(firestore_db), lambda: client, wiring.settings())

    def report(agent_user_id: str, on: bool) -> int:
        now = int(time.time() * 1000)
        data = json.dumps(message_json("lamp-1", {"on": on}, now, user=agent_user_id)).encode()
        message = state_messages.parse(data, None, now)
        assert isinstance(message, state_messages.StateMessage)
        reporter.handle(message, uuid.uuid4().hex, now)
        return len(homegraph_standin.calls("reportStateAndNotification", agent_user_id))

    return report


def test_a_household_unlinks_one_member_at_a_time(
    authorize_app: Any,
    browser: LinkingBrowser,
    ada: Any,
    token_client: Any,
    fulfillment_app: Any,
    firestore_db: Any,
    add_devices: Any,
    homegraph_standin: Any,
    report_state: Any,
) -> None:
    """Two Google accounts of one household link the same account: two grants. Each unlinks in turn."""
    from functions.core.device import parse_device
    from tools.google import execute_request, execution, query_request

    add_devices(ada.agent_user_id, [LAMP])
    homegraph_standin.link(ada.agent_user_id, sync=False, devices=[parse_device("lamp-1", LAMP).sync_view()])
    first = exchange(token_client, browser.link(ada.email)).get_json()
    second = exchange(token_client, LinkingBrowser(authorize_app).link(ada.email)).get_json()
    user = ada.agent_user_id

    def post(body: dict[str, Any], access_token: str) -> tuple[int, Any]:
        response = fulfillment_app.post("/", json=body, headers={"Authorization": f"Bearer {access_token}"})
        return response.status_code, response.get_json()

    def works(grant: dict[str, Any]) -> dict[str, Any]:
        """QUERY, EXECUTE and a refresh with the grant; its renewed tokens."""
        status, queried = post(query_request(["lamp-1"]), grant["access_token"])
        assert status == 200
        assert queried["payload"]["devices"]["lamp-1"]["online"] is True
        command = execute_request([(["lamp-1"], [execution("OnOff", {"on": True})])])
        status, executed = post(command, grant["access_token"])
        assert status == 200
        assert executed["payload"]["commands"][0]["status"] == "SUCCESS"
        renewed = refresh(token_client, grant["refresh_token"])
        assert renewed.status_code == 200
        return dict(renewed.get_json())

    def revoked(grant: dict[str, Any]) -> None:
        assert post(sync_request(), grant["access_token"])[0] == 401
        assert_oauth_error(refresh(token_client, grant["refresh_token"]), "invalid_grant")

    assert [grant.client_id for grant in grants_of(user)] == [CLIENT_ID, CLIENT_ID]
    reports = report_state(user, True)
    assert reports == 1

    assert post(disconnect_request("req-first-unlinks"), first["access_token"]) == (200, {})
    revoked(first)
    second = works(second)
    assert firestore_db.collection("users").document(user).get().to_dict()["linked"] is True
    assert report_state(user, False) == reports + 1, "Report State goes on for the member still linked"
    assert len(grants_of(user)) == 1

    assert post(disconnect_request("req-second-unlinks"), second["access_token"]) == (200, {})
    revoked(second)
    assert firestore_db.collection("users").document(user).get().to_dict()["linked"] is False
    assert report_state(user, True) == reports + 1, "the last link went: nothing more is reported"
    assert grants_of(user) == []


def grants_of(agent_user_id: str) -> list[Any]:
    from functions.linking.grant_store import FirestoreGrantStore

    return FirestoreGrantStore().grants_of(agent_user_id)


def test_storage_outages_are_temporarily_unavailable(
    linked: dict[str, Any], token_client: Any, browser: LinkingBrowser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.api_core import exceptions as google_errors

    from functions.linking.wiring import default_service

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise google_errors.ServiceUnavailable("emulated outage")

    service = default_service()
    monkeypatch.setattr(service.grants, "get", unavailable)
    assert_oauth_error(refresh(token_client, linked["refresh_token"]), "temporarily_unavailable", 503)
    monkeypatch.setattr(service.clients, "get", unavailable)
    response = browser.open(authorize_params())
    assert response.status_code == 503
    assert "Retry-After" in response.headers


def test_nothing_secret_is_logged(
    browser: LinkingBrowser, ada: Any, token_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = browser.link(ada.email)
    issued = exchange(token_client, code).get_json()
    renewed = refresh(token_client, issued["refresh_token"]).get_json()
    exchange(token_client, code)  # a replay, logged as a warning
    browser.open(authorize_params())
    browser.submit("sign_in", email=ada.email, password="wrong password 1")
    logged = "\n".join(f"{record.getMessage()} {json.dumps(vars(record), default=str)}" for record in caplog.records)
    assert "signed in" in logged
    assert "replayed" in logged
    for secret in (code, issued["access_token"], issued["refresh_token"], renewed["refresh_token"], CLIENT_SECRET):
        assert secret.split(".")[-1] not in logged
    for secret in (PASSWORD, "wrong password 1", ada.email):
        assert secret not in logged


def test_the_pages_refuse_to_run_without_a_session_key_in_production(
    browser: LinkingBrowser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST")  # the client made already keeps talking to the emulator
    monkeypatch.delenv("ACCOUNT_LINKING_SESSION_KEY", raising=False)
    response = browser.open(authorize_params())
    assert response.status_code == 500
    assert "not set up" in browser.page().text
    assert "ACCOUNT_LINKING_SESSION_KEY is not set" in caplog.text


# Transactions that keep losing (four exchanges of one code at once, on a loaded emulator: "Transaction lock
# timeout" on every attempt). The Firestore client then gives up with a ValueError raised from the last Aborted.


@pytest.fixture
def every_commit_loses(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """`every_commit_loses(True)`: from now on each transaction's commit is refused as a lost race; False: no more."""
    from google.api_core import exceptions as google_errors
    from google.cloud.firestore_v1 import transaction

    def lose(self: Any) -> list[Any]:
        # As the server does with a transaction it aborts, end it (and its locks); the client's runner rolls back
        # the last attempt itself.
        self.attempts_lost = getattr(self, "attempts_lost", 0) + 1
        if self.attempts_lost < self._max_attempts:
            self._rollback()
        raise google_errors.Aborted("Transaction lock timeout.")

    original = transaction.Transaction._commit

    def switch(losing: bool) -> None:
        monkeypatch.setattr(transaction.Transaction, "_commit", lose if losing else original)

    return switch


def test_an_exchange_that_never_wins_its_transaction_says_try_again_and_leaves_the_code_intact(
    browser: LinkingBrowser, ada: Any, token_client: Any, firestore_db: Any, every_commit_loses: Callable[[bool], None]
) -> None:
    code = browser.link(ada.email)
    every_commit_loses(True)
    refused = exchange(token_client, code)
    every_commit_loses(False)
    assert_oauth_error(refused, "temporarily_unavailable", status=503)
    assert refused.headers["Retry-After"]
    assert [d for d in token_documents(firestore_db).values() if d["kind"] in ("at", "rt")] == []
    assert exchange(token_client, code).status_code == 200, "nothing was used up: Google's retry links"


def test_a_refresh_that_never_wins_its_transaction_says_try_again_and_rotates_nothing(
    linked: dict[str, Any], token_client: Any, every_commit_loses: Callable[[bool], None]
) -> None:
    every_commit_loses(True)
    refused = refresh(token_client, linked["refresh_token"])
    every_commit_loses(False)
    assert_oauth_error(refused, "temporarily_unavailable", status=503)  # never invalid_grant: Google would unlink
    assert refresh(token_client, linked["refresh_token"]).status_code == 200, "nothing was rotated by the lost tries"


@pytest.mark.parametrize("kind", [tokens.CODE, tokens.REFRESH])
def test_a_store_transaction_that_loses_to_the_winner_answers_as_the_concurrent_repeat(
    kind: str, firestore_db: Any, every_commit_loses: Callable[[bool], None]
) -> None:
    """A code's redemption that lost to the one that used it is the concurrent use; a rotation that lost to the one
    that rotated the token is the concurrent refresh (the caller answers its successor: functions/linking/service.py).
    Both answer False, as when the winner came first."""
    from functions.linking.grant_store import FirestoreGrantStore
    from tests.contracts.test_linking_stores import NOW, code, grant_token, issued, record

    store = FirestoreGrantStore(firestore_db)
    first = code() if kind == tokens.CODE else grant_token(tokens.REFRESH)
    store.add(first, NOW)

    def transact(at_ms: int) -> bool:
        if kind == tokens.CODE:
            return store.redeem_code(first.record.token_hash, record(), issued(), at_ms)
        return store.rotate_refresh(first.record.token_hash, f"sealed-{at_ms}", issued(), NOW + 60_000, at_ms)

    assert transact(NOW + 1)
    every_commit_loses(True)
    assert transact(NOW + 2) is False


def test_a_consent_that_loses_to_the_one_that_consumed_its_session_finds_it_gone_and_else_says_try_again(
    firestore_db: Any, every_commit_loses: Callable[[bool], None]
) -> None:
    from functions.linking.store import FirestoreSignInSessions
    from functions.platform import failures
    from tests.contracts.test_linking_stores import NOW, session

    sessions = FirestoreSignInSessions(firestore_db)
    first = session()
    sessions.start(first, NOW)
    every_commit_loses(True)
    with pytest.raises(ValueError, match="Failed to commit transaction") as lost:  # nothing consumed it
        sessions.consume(first.session_hash)
    assert failures.classify(lost.value).status == 503  # the page says: try again
    every_commit_loses(False)
    assert sessions.get(first.session_hash) == first, "the lost attempts consumed nothing"
    assert sessions.consume(first.session_hash) == first
    every_commit_loses(True)
    assert sessions.consume(first.session_hash) is None  # consumed by the winner: gone
