"""The authorization endpoint's pages: sign-in, consent and error pages, rendered on the server (no JavaScript).

GET shows the sign-in page, or the consent page once signed in; POST handles their forms (`step` = sign_in,
consent or switch_account). Every form carries a CSRF token: an HMAC of a random value kept in a cookie. A
successful sign-in sets a signed, short-lived session cookie naming the agentUserId; the consent step ends it.

An unknown client or a redirect_uri the client did not register gets an error page, never a redirect (RFC 6749
section 4.1.2.1); any other invalid request is redirected back with its error and `state`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from flask import Request, Response

from functions.linking.model import Account, OAuthClient
from functions.linking.service import AccountLinking
from functions.platform import config

CSRF_COOKIE = "linking_csrf"
SESSION_COOKIE = "linking_session"
SESSION_TTL_S = 600
CSRF_FIELD = "csrf_token"

# No script may run; no framing (the consent page must not be clickjacked). No form-action: Chrome applies it to
# the redirect that follows the consent form, which goes to the client.
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str
    autocomplete: str
    value: str = ""
    error: str = ""
    form_error: bool = False

    @property
    def invalid(self) -> bool:
        return bool(self.error or self.form_error)

    @property
    def described_by(self) -> str:
        ids = [f"{self.name}-error"] if self.error else []
        return " ".join(ids + (["form-error"] if self.form_error else []))


def render(template: str, status: int, **values: Any) -> Response:
    html = _templates.get_template(template).render(service_name=config.account_linking_service_name(), **values)
    return Response(html, status=status, headers=PAGE_HEADERS)


def error_page(status: int, title: str, message: str, detail: str = "") -> Response:
    return render("error.html", status, title=title, message=message, detail=detail)


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Browser:
    """The browser's cookies: the CSRF value (made on first sight) and the signed sign-in session."""

    def __init__(self, request: Request, key: bytes, secure: bool) -> None:
        self._key = key
        self._secure = secure
        cookie = request.cookies.get(CSRF_COOKIE, "")
        self._new_csrf = not (16 <= len(cookie) <= 64 and cookie.isascii())
        self._csrf = secrets.token_urlsafe(24) if self._new_csrf else cookie
        self._session = request.cookies.get(SESSION_COOKIE, "")
        self._session_change: str | None = None  # "" deletes

    @property
    def csrf_token(self) -> str:
        return _mac(self._key, "csrf", self._csrf)

    def csrf_valid(self, submitted: str | None) -> bool:
        expected = self.csrf_token.encode()
        return not self._new_csrf and bool(submitted) and hmac.compare_digest(expected, (submitted or "").encode())

    def signed_in_user(self) -> str | None:
        """The agentUserId of a valid, unexpired session cookie."""
        try:
            agent_user_id, expires, mac = self._session.rsplit(".", 2)
        except ValueError:
            return None
        expected = _mac(self._key, "session", f"{agent_user_id}.{expires}")
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return agent_user_id or None

    def sign_in(self, account: Account) -> None:
        payload = f"{account.agent_user_id}.{int(time.time()) + SESSION_TTL_S}"
        self._session_change = f"{payload}.{_mac(self._key, 'session', payload)}"

    def sign_out(self) -> None:
        self._session_change = ""

    def apply(self, response: Response) -> Response:
        cookie = {"path": "/", "secure": self._secure, "httponly": True, "samesite": "Lax"}
        if self._new_csrf:
            response.set_cookie(CSRF_COOKIE, self._csrf, **cookie)  # type: ignore[arg-type]
        if self._session_change == "":
            response.delete_cookie(SESSION_COOKIE, **cookie)  # type: ignore[arg-type]
        elif self._session_change is not None:
            response.set_cookie(SESSION_COOKIE, self._session_change, max_age=SESSION_TTL_S, **cookie)  # type: ignore[arg-type]
        return response


def _see_other(query: str) -> Response:
    # Relative: the function does not know the public path it is served under.
    return Response("", status=303, headers={"Location": f"?{query}", "Cache-Control": "no-store"})


def _redirect(reply: Any) -> Response:
    """Authlib's redirect back to the client; a reply without one (never expected) becomes an error page."""
    if reply.location is None:
        body = reply.body if isinstance(reply.body, dict) else {}
        return error_page(
            400, "Invalid link request", "The link request cannot be completed.", str(body.get("error", ""))
        )
    return Response("", status=302, headers={"Location": reply.location, "Cache-Control": "no-store"})


class AuthorizePages:
    def __init__(self, request: Request, service: AccountLinking, key: bytes) -> None:
        from functions.linking import oauth

        self.oauth = oauth
        self.request = request
        self.service = service
        self.server = oauth.Server(service)
        self.browser = Browser(request, key, secure=oauth.public_url(request).startswith("https://"))
        self.query = request.query_string.decode("utf-8", "replace")

    def respond(self) -> Response:
        return self.browser.apply(self._respond())

    def _respond(self) -> Response:
        refusal = self._client_refusal()
        if refusal is not None:
            return refusal
        try:
            grant = self.oauth.consent_grant(self.server, self.request)
        except self.oauth.OAuth2Error as error:
            return self._oauth_error(error)
        client: OAuthClient = grant.request.client.client
        form = self.request.form
        if self.request.method == "GET":
            account = self._signed_in()
            return self._consent(client, account) if account else self._sign_in_page(client)
        step = form.get("step", "")
        if not self.browser.csrf_valid(form.get(CSRF_FIELD)):
            expired = "This page expired or was opened elsewhere. Please try again."
            account = self._signed_in()
            if account is not None:
                return self._consent(client, account, form_error=expired, status=403)
            return self._sign_in_page(client, email=form.get("email", ""), form_error=expired, status=403)
        if step == "sign_in":
            return self._sign_in(client)
        if step == "consent":
            return self._decide(client, grant)
        if step == "switch_account":
            self.browser.sign_out()
            return _see_other(self.query)
        return error_page(400, "Unexpected form", "This form could not be understood.", f"step={step[:40]!r}")

    def _client_refusal(self) -> Response | None:
        """The error page for a request that names no known client or a redirect_uri it did not register."""
        values = self.request.values
        client_id = values.get("client_id", "")
        if not client_id:
            return error_page(
                400,
                "Link request incomplete",
                "This link request does not say which app is asking.",
                "client_id missing",
            )
        client = self.server.query_client(client_id)
        if client is None:
            return error_page(
                400,
                "Unknown app",
                "The app that sent you here is not registered with this service, so it cannot be linked.",
                f"unknown client_id {client_id[:128]!r}",
            )
        redirect_uri = values.get("redirect_uri")
        if redirect_uri and not client.check_redirect_uri(redirect_uri):
            return error_page(
                400,
                "Unknown return address",
                "This link request would send you back to an address that is not registered for the app, "
                "so it was stopped.",
                f"redirect_uri {redirect_uri[:300]!r} is not registered for client {client_id[:128]!r}",
            )
        return None

    def _oauth_error(self, error: Any) -> Response:
        if error.redirect_uri:
            return _redirect(self.oauth.error_reply(self.server, error))
        return error_page(
            400,
            "Invalid link request",
            "The app sent a link request that cannot be accepted.",
            f"{error.error}: {error.get_error_description() or ''}",
        )

    def _signed_in(self) -> Account | None:
        agent_user_id = self.browser.signed_in_user()
        return self.service.account(agent_user_id) if agent_user_id else None

    def _sign_in_page(
        self,
        client: OAuthClient,
        email: str = "",
        errors: dict[str, str] | None = None,
        form_error: str = "",
        notice: str = "",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        errors = errors or {}
        fields = [
            Field("email", "E-mail address", "email", "username", email, errors.get("email", ""), bool(form_error)),
            Field(
                "password", "Password", "password", "current-password", "", errors.get("password", ""), bool(form_error)
            ),
        ]
        response = render(
            "sign_in.html",
            status,
            client_name=client.name,
            query=self.query,
            csrf_token=self.browser.csrf_token,
            fields=fields,
            form_error=form_error,
            notice=notice,
        )
        response.headers.update(headers or {})
        return response

    def _consent(self, client: OAuthClient, account: Account, form_error: str = "", status: int = 200) -> Response:
        return render(
            "consent.html",
            status,
            client_name=client.name,
            email=account.email,
            query=self.query,
            csrf_token=self.browser.csrf_token,
            form_error=form_error,
        )

    def _sign_in(self, client: OAuthClient) -> Response:
        form = self.request.form
        email, password = form.get("email", "").strip(), form.get("password", "")
        errors = {}
        if not email:
            errors["email"] = "Enter your e-mail address."
        if not password:
            errors["password"] = "Enter your password."  # noqa: S105 - a message
        if errors:
            return self._sign_in_page(client, email=email, errors=errors, status=400)
        result = self.service.sign_in(email, password)
        if result.throttled:
            minutes = max(1, -(-result.retry_after_s // 60))
            return self._sign_in_page(
                client,
                email=email,
                form_error=f"Too many sign-in attempts for this account. Try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}.",
                status=429,
                headers={"Retry-After": str(result.retry_after_s)},
            )
        if result.account is None:
            return self._sign_in_page(
                client, email=email, form_error="The e-mail address or password is incorrect.", status=400
            )
        self.browser.sign_in(result.account)
        return _see_other(self.query)

    def _decide(self, client: OAuthClient, grant: Any) -> Response:
        account = self._signed_in()
        if account is None:
            return self._sign_in_page(client, notice="Your sign-in expired. Please sign in again.")
        decision = self.request.form.get("decision")
        if decision not in ("allow", "deny"):
            return self._consent(client, account, form_error="Choose Allow or Deny.", status=400)
        reply = self.oauth.authorization_response(self.server, grant, account if decision == "allow" else None)
        self.browser.sign_out()
        return _redirect(reply)
