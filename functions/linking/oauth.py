"""Authlib's OAuth 2.0 authorization server, wired to the account-linking service (functions.linking.service).

Authlib does the protocol: request validation, client authentication (HTTP Basic or secret in the body), exact
redirect_uri matching, `state`, PKCE and every RFC 6749 error. The grants below only answer its questions from the
domain service. Imported lazily by the `authorize` and `token` entry points.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error as OAuth2Error  # re-exported for the pages
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InsecureTransportError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749 import grants as authlib_grants
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Request
from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from functions.core import tokens
from functions.linking import model as linking
from functions.linking.model import Account, GrantToken, IssuedTokens, OAuthClient
from functions.linking.service import AccountLinking

# Authlib logs issued tokens at DEBUG level; tokens are never logged here, whatever the root level.
logging.getLogger("authlib").setLevel(logging.INFO)

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
# Parameters that may appear once only (RFC 6749 section 3.1 and 3.2).
SINGLE_PARAMETERS = (
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "refresh_token",
    "scope",
    "code_verifier",
    "response_type",
    "state",
    "code_challenge",
    "code_challenge_method",
)


@dataclass(frozen=True)
class OAuthReply:
    status: int
    body: dict[str, Any] | str
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((value for name, value in self.headers if name.lower() == "location"), None)


# Models: Authlib's view of the domain's records


class ClientModel(ClientMixin):  # type: ignore[misc]
    def __init__(self, client: OAuthClient) -> None:
        self.client = client
        self.client_id = client.client_id

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous one (RFC 6749 section 3.1.2.3); Google always sends redirect_uri anyway.
        return self.client.redirect_uris[0] if len(self.client.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        return self.client.allowed_scope(scope)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.client.allows_redirect(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client.secret_matches(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in TOKEN_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.client.allows_grant(linking.AUTHORIZATION_CODE)

    def check_grant_type(self, grant_type: str) -> bool:
        return self.client.allows_grant(grant_type)


class CodeModel(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, grant: GrantToken) -> None:
        self.grant = grant
        self.code_challenge = grant.code_challenge
        self.code_challenge_method = grant.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.grant.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope


class RefreshModel(TokenMixin):  # type: ignore[misc]
    def __init__(self, grant: GrantToken) -> None:
        self.grant = grant

    def check_client(self, client: ClientModel) -> bool:
        return self.grant.client_id == client.client_id

    def get_scope(self) -> str:
        return self.grant.scope

    def get_expires_in(self) -> int:
        return linking.REFRESH_TTL_S

    def is_expired(self) -> bool:
        return False  # checked by the domain before this model is made

    def is_revoked(self) -> bool:
        return False


# Grants


class CodeGrant(authlib_grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    @property
    def linking(self) -> AccountLinking:
        return self.server.linking  # type: ignore[no-any-return]

    def generate_authorization_code(self) -> str:
        return tokens.mint(tokens.CODE, self.request.user.agent_user_id)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.linking.save_code(
            code,
            request.user,
            request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: ClientModel) -> CodeModel | None:
        found = self.linking.find_code(code, client.client_id)
        return CodeModel(found) if found else None

    def delete_authorization_code(self, authorization_code: CodeModel) -> None:
        """Nothing left to do: the code was used up in the same transaction that stored the tokens."""

    def authenticate_user(self, authorization_code: CodeModel) -> Account | None:
        return self.linking.account(authorization_code.grant.agent_user_id)


class RefreshGrant(authlib_grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def linking(self) -> AccountLinking:
        return self.server.linking  # type: ignore[no-any-return]

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshModel | None:
        found = self.linking.find_refresh_token(refresh_token)
        return RefreshModel(found) if found else None

    def issue_token(self, user: Account, refresh_token: RefreshModel) -> dict[str, Any]:
        """New tokens on a refresh token's first use, stored with its rotation; the same successor again when the
        use is repeated inside the grace window (the service decides; Authlib's save_token has nothing left)."""
        scope = self.request.payload.scope or refresh_token.get_scope()
        presented = self.request.form.get("refresh_token") or ""
        refreshed = self.linking.refresh(refresh_token.grant, presented, scope or "")
        if refreshed is None:
            raise InvalidGrantError("The refresh token is no longer valid.")
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": refreshed.tokens.access_token,
            "expires_in": refreshed.expires_in,
            "refresh_token": refreshed.tokens.refresh_token,
        }
        if refreshed.scope:
            token["scope"] = refreshed.scope
        return token

    def authenticate_user(self, refresh_token: RefreshModel) -> Account:
        account = self.linking.account(refresh_token.grant.agent_user_id)
        if account is None:
            # Authlib would say invalid_request; the grant is what is gone, and invalid_grant makes Google unlink.
            raise InvalidGrantError("The account of this refresh token no longer exists.")
        return account

    def revoke_old_credential(self, refresh_token: RefreshModel) -> None:
        """Nothing left to do: the rotation was stored together with the new tokens."""


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE when the client sends a challenge; only S256, since "plain" protects nothing (RFC 9700 2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = [linking.S256]

    def validate_code_challenge(self, grant: CodeGrant, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != linking.S256:
            raise InvalidRequestError("'code_challenge_method' must be S256")


# Requests


def without_empty(values: MultiDict[str, str]) -> ImmutableMultiDict[str, str]:
    """RFC 6749 section 3.1: "Parameters sent without a value MUST be treated as if they were omitted"."""
    return ImmutableMultiDict([(name, value) for name, value in values.items(multi=True) if value != ""])


class _FlaskPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, request: Request) -> None:
        self._values = without_empty(request.values)

    @property
    def data(self) -> Any:
        return self._values

    @cached_property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key in self._values:
            values[key].extend(self._values.getlist(key))
        return values


class FlaskRequest(OAuth2Request):  # type: ignore[misc]
    """A Flask request for Authlib, with the URL the client used: behind Cloud Run's front end the function sees
    http, and X-Forwarded-Proto says it was https (Authlib refuses plain http except on the loopback)."""

    def __init__(self, request: Request) -> None:
        super().__init__(method=request.method, uri=public_url(request), headers=request.headers)
        self._request = request
        self.payload = _FlaskPayload(request)

    @property
    def args(self) -> Any:
        return without_empty(self._request.args)

    @cached_property
    def form(self) -> Any:
        return without_empty(self._request.form)


def public_url(request: Request) -> str:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    url = str(request.url)
    if forwarded == "https" and url.startswith("http://"):
        return "https://" + url[len("http://") :]
    return url


# The server


class Server(AuthorizationServer):  # type: ignore[misc]
    """One per HTTP request (cheap): it memoizes client look-ups, which Authlib makes several times."""

    def __init__(self, service: AccountLinking) -> None:
        super().__init__()
        self.linking = service
        self._clients: dict[str, ClientModel | None] = {}
        self.register_grant(CodeGrant, [S256Only(required=False)])
        self.register_grant(RefreshGrant)
        self.register_token_generator("default", _generate_tokens)

    def query_client(self, client_id: str) -> ClientModel | None:
        if client_id not in self._clients:
            found = self.linking.client(client_id)
            self._clients[client_id] = ClientModel(found) if found else None
        return self._clients[client_id]

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        issued = IssuedTokens(token["access_token"], token.get("refresh_token"))
        if request.authorization_code is not None:
            if not self.linking.exchange_code(request.authorization_code.grant, issued):
                raise InvalidGrantError("The code was already used.")
        elif request.refresh_token is not None:
            return  # stored by RefreshGrant.issue_token, with the rotation
        else:  # pragma: no cover - only the two grants above are registered
            raise RuntimeError("token issued without a grant")

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request if isinstance(request, OAuth2Request) else FlaskRequest(request)

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthReply:
        return OAuthReply(status, body, [(str(name), str(value)) for name, value in headers])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's framework signals: none are used."""


def _generate_tokens(
    grant_type: str,
    client: ClientModel,
    user: Account,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = True,
) -> dict[str, Any]:
    token: dict[str, Any] = {
        "token_type": "Bearer",
        "access_token": tokens.mint(tokens.ACCESS, user.agent_user_id),
        "expires_in": linking.ACCESS_TTL_S,
    }
    if include_refresh_token:
        token["refresh_token"] = tokens.mint(tokens.REFRESH, user.agent_user_id)
    if scope:
        token["scope"] = scope
    return token


# The token endpoint


def token_response(service: AccountLinking, request: Request) -> OAuthReply:
    server = Server(service)
    problem = _token_request_problem(request)
    if problem:
        return server.handle_error_response(None, InvalidRequestError(problem))  # type: ignore[no-any-return]
    try:
        return server.create_token_response(request)  # type: ignore[no-any-return]
    except InsecureTransportError as error:  # raised before Authlib's own error handling starts
        return server.handle_error_response(None, error)  # type: ignore[no-any-return]


def _token_request_problem(request: Request) -> str | None:
    """What Authlib lets pass but RFC 6749 refuses with invalid_request."""
    form = request.form
    if not form.get("grant_type"):
        return "Missing 'grant_type' (send the parameters as application/x-www-form-urlencoded)."
    for name in SINGLE_PARAMETERS:
        if len(request.values.getlist(name)) > 1:
            return f"Multiple '{name}' in request."
    basic = request.headers.get("Authorization", "").split(" ")[0].lower() == "basic"
    if basic and form.get("client_secret"):
        return "Use one client authentication method: HTTP Basic or client_secret in the body, not both."
    return None


# The authorization endpoint (the pages in functions/linking/pages.py drive it)


def consent_grant(server: Server, request: Request) -> CodeGrant:
    """The validated authorization request; OAuth2Error (with `redirect_uri` set when it may be redirected)."""
    return server.get_consent_grant(request)  # type: ignore[no-any-return]


def authorization_response(server: Server, grant: CodeGrant, account: Account | None) -> OAuthReply:
    """The redirect back to the client: a code for `account`, or access_denied for None."""
    return server.create_authorization_response(grant.request, grant_user=account, grant=grant)  # type: ignore[no-any-return]


def error_reply(server: Server, error: OAuth2Error) -> OAuthReply:
    return server.handle_error_response(None, error)  # type: ignore[no-any-return]
