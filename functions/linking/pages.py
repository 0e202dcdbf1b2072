"""The authorization endpoint's pages: sign-in, consent and error pages, rendered on the server (no JavaScript).

GET shows the sign-in page, or the consent page once signed in; POST handles their forms (`step` = sign_in,
consent or switch_account). Every form carries a CSRF token. A successful sign-in starts a single-use session bound
to this authorization request (functions.linking.cookies); the consent step uses it up on the server, whatever the
answer. The consent page says, in Google's words, that the account will be linked to Google and that Google will be
able to control the devices; "Agree and link" redirects back with a code, "Cancel" with `access_denied`.

An unknown client or a redirect_uri the client did not register gets an error page, never a redirect (RFC 6749
section 4.1.2.1); any other invalid request is redirected back with its error and `state`. Pages speak the
browser's language (functions.linking.i18n) and carry the maker's brand (functions.linking.branding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Request, Response

from functions.linking import branding, i18n, throttling
from functions.linking.cookies import Browser
from functions.linking.i18n import N_, Translator
from functions.linking.model import Account, OAuthClient, account_key, request_binding
from functions.linking.service import AccountLinking
from functions.platform import config

CSRF_FIELD = "csrf_token"
# The authorization request's parameters a sign-in session is bound to.
BOUND_PARAMETERS = (
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "response_type",
)
HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Vary": "Accept-Language",
}


@dataclass(frozen=True)
class PageError:
    title: str
    message: str


METHOD_NOT_ALLOWED = PageError(N_("Method not allowed"), N_("This page can only be opened or submitted."))
FORM_TOO_LARGE = PageError(N_("Form too large"), N_("The submitted form is too large."))
NOT_SET_UP = PageError(N_("Not available"), N_("Account linking is not set up on this service yet."))
BROKEN = PageError(N_("Something went wrong"), N_("The link request could not be handled. Please try again."))
BUSY = PageError(N_("Temporarily unavailable"), N_("The service is busy right now. Please try again in a moment."))
NO_CLIENT = PageError(N_("Link request incomplete"), N_("This link request does not say which app is asking."))
UNKNOWN_CLIENT = PageError(
    N_("Unknown app"), N_("The app that sent you here is not registered with this service, so it cannot be linked.")
)
UNKNOWN_REDIRECT = PageError(
    N_("Unknown return address"),
    N_("This link request would send you back to an address that is not registered for the app, so it was stopped."),
)
INVALID_REQUEST = PageError(N_("Invalid link request"), N_("The app sent a link request that cannot be accepted."))
INCOMPLETE = PageError(N_("Invalid link request"), N_("The link request cannot be completed."))
UNEXPECTED_FORM = PageError(N_("Unexpected form"), N_("This form could not be understood."))
NOT_FOUND = PageError(N_("Not found"), N_("There is nothing here."))


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


def translator(request: Request) -> Translator:
    return Translator(
        i18n.negotiate(request.headers.get("Accept-Language", ""), config.account_linking_default_language())
    )


def render(t: Translator, template: str, status: int, **values: Any) -> Response:
    brand = branding.current()
    html = t.render(template, brand=brand, **values)
    headers = {**HEADERS, "Content-Security-Policy": brand.csp, "Content-Language": t.language.tag}
    return Response(html, status=status, headers=headers)


def error_response(t: Translator, status: int, error: PageError, detail: str = "") -> Response:
    title, message = t.gettext(error.title), t.gettext(error.message)
    return render(t, "error.html", status, title=title, message=message, detail=detail)


def error_page(request: Request, status: int, error: PageError, detail: str = "") -> Response:
    """An error page in the request's language (for the entry point, before the pages run)."""
    return error_response(translator(request), status, error, detail)


def asset(request: Request) -> Response:
    """`?asset=logo`: the shipped logo file (functions.linking.branding); anything else is not found."""
    logo = branding.current().logo
    if request.args.get("asset") != branding.LOGO_ASSET or logo is None or logo.content is None:
        return error_page(request, 404, NOT_FOUND)
    headers = {
        "Content-Type": logo.content_type or "application/octet-stream",
        "Cache-Control": "public, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        # Opened on its own, an SVG is a document: it may run nothing.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    return Response(logo.content, status=200, headers=headers)


def _see_other(query: str) -> Response:
    # Relative: the function does not know the public path it is served under.
    return Response("", status=303, headers={"Location": f"?{query}", "Cache-Control": "no-store"})


class AuthorizePages:
    def __init__(self, request: Request, service: AccountLinking, key: bytes) -> None:
        from functions.linking import oauth

        self.oauth = oauth
        self.request = request
        self.service = service
        self.server = oauth.Server(service)
        self.browser = Browser(request, key, secure=oauth.public_url(request).startswith("https://"))
        self.query = request.query_string.decode("utf-8", "replace")
        self.t = translator(request)
        self.binding = request_binding([request.args.get(name) for name in BOUND_PARAMETERS])

    def respond(self) -> Response:
        return self.browser.apply(self._respond())

    def _error(self, status: int, error: PageError, detail: str = "") -> Response:
        return error_response(self.t, status, error, detail)

    def _redirect(self, reply: Any) -> Response:
        """Authlib's redirect back to the client; a reply without one (never expected) becomes an error page."""
        if reply.location is None:
            body = reply.body if isinstance(reply.body, dict) else {}
            return self._error(400, INCOMPLETE, str(body.get("error", "")))
        return Response("", status=302, headers={"Location": reply.location, "Cache-Control": "no-store"})

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
            expired = self.t.gettext("This page expired or was opened elsewhere. Please try again.")
            account = self._signed_in()
            if account is not None:
                return self._consent(client, account, form_error=expired, status=403)
            return self._sign_in_page(client, email=form.get("email", ""), form_error=expired, status=403)
        if step == "sign_in":
            return self._sign_in(client)
        if step == "consent":
            return self._decide(client, grant)
        if step == "switch_account":
            self.service.consume_session(self.browser.session_secret, self.binding)
            self.browser.end_session()
            return _see_other(self.query)
        return self._error(400, UNEXPECTED_FORM, f"step={step[:40]!r}")

    def _client_refusal(self) -> Response | None:
        """The error page for a request that names no known client or a redirect_uri it did not register."""
        values = self.request.values
        client_id = values.get("client_id", "")
        if not client_id:
            return self._error(400, NO_CLIENT, "client_id missing")
        client = self.server.query_client(client_id)
        if client is None:
            return self._error(400, UNKNOWN_CLIENT, f"unknown client_id {client_id[:128]!r}")
        redirect_uri = values.get("redirect_uri")
        if redirect_uri and not client.check_redirect_uri(redirect_uri):
            detail = f"redirect_uri {redirect_uri[:300]!r} is not registered for client {client_id[:128]!r}"
            return self._error(400, UNKNOWN_REDIRECT, detail)
        return None

    def _oauth_error(self, error: Any) -> Response:
        if error.redirect_uri:
            return self._redirect(self.oauth.error_reply(self.server, error))
        return self._error(400, INVALID_REQUEST, f"{error.error}: {error.get_error_description() or ''}")

    def _signed_in(self) -> Account | None:
        return self.service.signed_in(self.browser.session_secret, self.binding)

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
        t = self.t
        fields = [
            Field(
                "email",
                t.gettext("E-mail address"),
                "email",
                "username",
                email,
                errors.get("email", ""),
                bool(form_error),
            ),
            Field(
                "password",
                t.gettext("Password"),
                "password",
                "current-password",
                "",
                errors.get("password", ""),
                bool(form_error),
            ),
        ]
        response = render(
            t,
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
            self.t,
            "consent.html",
            status,
            client_name=client.name,
            email=account.email,
            query=self.query,
            csrf_token=self.browser.csrf_token,
            form_error=form_error,
        )

    def _sign_in(self, client: OAuthClient) -> Response:
        form, t = self.request.form, self.t
        email, password = form.get("email", "").strip(), form.get("password", "")
        errors = {}
        if not email:
            errors["email"] = t.gettext("Enter your e-mail address.")
        if not password:
            errors["password"] = t.gettext("Enter your password.")
        if errors:
            return self._sign_in_page(client, email=email, errors=errors, status=400)
        address = throttling.forwarded_client(
            self.request.headers.get("X-Forwarded-For", ""),
            self.request.remote_addr or "",
            config.account_linking_client_ip_hop(),
        )
        key = account_key(email)
        result = self.service.sign_in(email, password, address, self.browser.trusted_device(key))
        if result.throttled:
            minutes = max(1, -(-result.retry_after_s // 60))
            message = t.ngettext(
                "Too many sign-in attempts. Try again in %(num)d minute.",
                "Too many sign-in attempts. Try again in %(num)d minutes.",
                minutes,
            )
            headers = {"Retry-After": str(result.retry_after_s)}
            return self._sign_in_page(client, email=email, form_error=message, status=429, headers=headers)
        if result.account is None:
            wrong = t.gettext("The e-mail address or password is incorrect.")
            return self._sign_in_page(client, email=email, form_error=wrong, status=400)
        # A session left from an earlier sign-in in this browser ends: one session per browser.
        self.service.consume_session(self.browser.session_secret, self.binding)
        self.browser.start_session(self.service.start_session(result.account, self.binding))
        self.browser.remember_device(key)
        return _see_other(self.query)

    def _decide(self, client: OAuthClient, grant: Any) -> Response:
        decision = self.request.form.get("decision")
        if decision not in ("allow", "deny"):
            account = self._signed_in()
            if account is not None:
                choose = self.t.gettext("Choose Agree and link, or Cancel.")
                return self._consent(client, account, form_error=choose, status=400)
        # Used up here, whatever the answer: the same cookie never gives a second code.
        account = self.service.consume_session(self.browser.session_secret, self.binding)
        self.browser.end_session()
        if account is None or decision not in ("allow", "deny"):
            notice = self.t.gettext("Your sign-in expired. Please sign in again.")
            return self._sign_in_page(client, notice=notice)
        reply = self.oauth.authorization_response(self.server, grant, account if decision == "allow" else None)
        return self._redirect(reply)
