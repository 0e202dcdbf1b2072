"""Account linking's model: accounts, clients, grants, sign-in sessions, and the stores they need.

The rules that use them are the AccountLinking service (functions.linking.service); sign-in throttling has its own
module (functions.linking.throttling).

A grant is one completed account linking: the code it started from and every access and refresh token issued from
that code and its refreshes share a `grant_id`, and a `Grant` record names the client, when it was made and last
used. Google links several Google accounts of one household to one account; each link is a grant of its own, and
revoking one (DISCONNECT, a replayed code, a reused refresh token) leaves the others working.

Codes, access and refresh tokens are `functions.core.tokens` tokens (`ac.`, `at.`, `rt.`), stored only as their
SHA-256 in the same token store the fulfillment reads, and checked with `TokenRecord.grants` (constant-time
comparison).

Refresh tokens rotate: the first use of one returns its successor, and repeating that use inside
`REFRESH_GRACE_S` returns the same successor again (Google refreshes concurrently). A rotated token used after the
window is a reuse: the whole grant is revoked (RFC 9700 section 4.14.2). Rotated tokens are kept for
`REUSE_DETECTION_S` to recognise such a reuse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import urlsplit

from functions.core import tokens
from functions.core.tokens import TokenRecord

CODE_TTL_S = 600
ACCESS_TTL_S = tokens.ACCESS_TOKEN_TTL_S
# Each rotation starts a new year: only a user whose Google stopped calling for a year has to link again.
REFRESH_TTL_S = 365 * 24 * 3600
REFRESH_GRACE_S = 60
MIN_REFRESH_GRACE_S = 30
# How long a rotated refresh token is remembered, so that its reuse revokes its grant; after that it is unknown.
REUSE_DETECTION_S = 30 * 24 * 3600
SESSION_TTL_S = 600

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type's name
GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN)
S256 = "S256"
# Kinds of the token store's documents that are not tokens: a grant's record, a sign-in session.
GRANT_RECORD = "grant"
SIGN_IN_SESSION = "session"

MAX_EMAIL_LENGTH = 254
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
CLIENT_SECRET_MIN_LENGTH = 32
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")


def now_ms() -> int:
    return int(time.time() * 1000)


# Accounts


@dataclass(frozen=True)
class Account:
    """Someone who can sign in. `agent_user_id` is the stable opaque id Google knows them by (never the e-mail)."""

    agent_user_id: str
    email: str


def new_agent_user_id() -> str:
    """128 random bits, hex: opaque, stable once given, and a valid Firestore document id."""
    return secrets.token_hex(16)


def normalize_email(email: str) -> str:
    return email.strip().casefold()


def email_problem(email: str) -> str | None:
    """Why `email` cannot name an account, or None."""
    normalized = normalize_email(email)
    if not normalized:
        return "the e-mail address is empty"
    if len(normalized) > MAX_EMAIL_LENGTH:
        return f"the e-mail address is longer than {MAX_EMAIL_LENGTH} characters"
    if not _EMAIL_PATTERN.match(normalized):
        return "the e-mail address must look like name@example.com"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password may have at most {MAX_PASSWORD_LENGTH} characters"
    return None


def account_key(email: str) -> str:
    """The key of an e-mail's account and sign-in throttle: SHA-256 of the normalized address."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


class UserDirectory(Protocol):
    """Who may sign in. The default keeps argon2 hashes in Firestore; a maker may plug in their own provider."""

    def authenticate(self, email: str, password: str) -> Account | None:
        """The account if the password is right, else None: the same answer, in about the same time, for a wrong
        password and for an e-mail without an account."""
        ...

    def get(self, agent_user_id: str) -> Account | None:
        """The account behind an agentUserId, or None once it is gone."""
        ...


@dataclass(frozen=True)
class SignIn:
    account: Account | None
    retry_after_s: int = 0

    @property
    def throttled(self) -> bool:
        return self.retry_after_s > 0


# Clients


def hash_client_secret(secret: str) -> str:
    """SHA-256, like tokens: client secrets are long random strings, so it cannot be reversed, and it is fast."""
    return tokens.hash_token(secret)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    name: str
    secret_hash: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = GRANT_TYPES

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(hash_client_secret(secret), self.secret_hash)

    def allows_redirect(self, redirect_uri: str) -> bool:
        """Exact string comparison, as RFC 6749 section 3.1.2.3 asks: no prefixes, no normalization."""
        return redirect_uri in self.redirect_uris

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def allowed_scope(self, requested: str | None) -> str | None:
        """The scope string to grant, or None if the client may not have part of what it asked for."""
        wanted = (requested or "").split()
        if any(scope not in self.scopes for scope in wanted):
            return None
        return " ".join(dict.fromkeys(wanted))


def client_id_problem(client_id: str) -> str | None:
    if not CLIENT_ID_PATTERN.match(client_id):
        return "the client id must be 1 to 128 letters, digits or . _ ~ -"
    return None


def redirect_uri_problem(uri: str) -> str | None:
    """Redirect URIs must be absolute https URLs without fragment (http only on the loopback, for tests)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return f"{uri!r} is not a URL"
    if parts.fragment or "#" in uri:
        return f"{uri!r} may not contain a fragment"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return None
    return f"{uri!r} must be an absolute https URL (http only on localhost)"


class ClientRegistry(Protocol):
    def get(self, client_id: str) -> OAuthClient | None: ...


# Grants: codes and tokens with what the protocol needs to remember about them


@dataclass(frozen=True)
class GrantToken:
    """A stored code or token (only its hash) with the authorization it carries.

    A rotated refresh token keeps `successor`: the tokens its first use returned, sealed under a key only the
    refresh token itself gives (functions.linking.successors), so that a repeat inside the grace window can answer
    with them again while the store alone cannot read them."""

    record: TokenRecord
    grant_id: str
    scope: str = ""
    redirect_uri: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    used_at_ms: int | None = None
    rotated_at_ms: int | None = None
    successor: str | None = None

    @property
    def agent_user_id(self) -> str:
        return self.record.agent_user_id

    @property
    def client_id(self) -> str | None:
        return self.record.client_id


@dataclass(frozen=True)
class Grant:
    """One completed account linking, for operators and for the "still linked?" question (never a token)."""

    grant_id: str
    agent_user_id: str
    client_id: str | None
    scope: str
    created_at_ms: int
    last_used_at_ms: int
    expires_at_ms: int

    def live(self, now_ms: int) -> bool:
        return now_ms < self.expires_at_ms


def grant_record_id(grant_id: str) -> str:
    """The record's key in the token store, apart from every token hash (those are 64 hex digits)."""
    return f"{GRANT_RECORD}-{grant_id}"


def code_redeemable(code: GrantToken, now: int) -> bool:
    record = code.record
    return record.kind == tokens.CODE and code.used_at_ms is None and not record.revoked and now < record.expires_at_ms


def rotated(refresh: GrantToken, successor: str, keep_until_ms: int, now: int) -> GrantToken | None:
    """The refresh token after its first use at `now`, or None if it cannot rotate (not a live, unrotated refresh
    token). It is kept until `keep_until_ms` (never longer than it would have lived) to recognise a reuse."""
    record = refresh.record
    if record.kind != tokens.REFRESH or record.revoked or now >= record.expires_at_ms:
        return None
    if refresh.rotated_at_ms is not None:
        return None
    kept = replace(record, expires_at_ms=min(record.expires_at_ms, keep_until_ms))
    return replace(refresh, record=kept, rotated_at_ms=now, successor=successor)


def touched(grant: Grant | None, token: GrantToken, now: int, expires_at_ms: int) -> Grant:
    """The grant's record after a use of `token` at `now`; a grant from before records gets one (migration)."""
    if grant is None:
        return Grant(token.grant_id, token.agent_user_id, token.client_id, token.scope, now, now, expires_at_ms)
    return replace(grant, last_used_at_ms=now, expires_at_ms=max(grant.expires_at_ms, expires_at_ms))


class GrantStore(Protocol):
    def get(self, token_hash: str) -> GrantToken | None: ...

    def add(self, token: GrantToken, now_ms: int) -> None:
        """Stores a new code or token; AlreadyExists if its hash is stored already."""
        ...

    def redeem_code(self, code_hash: str, grant: Grant, issued: Sequence[GrantToken], now_ms: int) -> bool:
        """Atomically: if the code is still `code_redeemable`, marks it used, stores the grant's record and
        `issued`; else writes nothing and returns False."""
        ...

    def rotate_refresh(
        self, refresh_hash: str, successor: str, issued: Sequence[GrantToken], keep_until_ms: int, now_ms: int
    ) -> bool:
        """Atomically: if the refresh token can still rotate (`rotated`), stores its rotated form, `issued`, and the
        grant's record `touched` (expiring with the newest refresh token); else writes nothing and returns False."""
        ...

    def revoke_grant(self, grant_id: str) -> int:
        """Deletes every code and token of the grant and its record; returns how many documents."""
        ...

    def grants_of(self, agent_user_id: str) -> list[Grant]:
        """The user's grant records, oldest first."""
        ...


class LinkMarker(Protocol):
    """The user's link state the fulfillment and Report State read (users/{agentUserId}.linked)."""

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None: ...

    def unlink_unless_a_grant_lives(self, agent_user_id: str, now_ms: int) -> bool:
        """After a grant was revoked: marks the user unlinked unless another grant of theirs lives; True if so."""
        ...


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str | None


# Sign-in sessions: a successful sign-in, good for one consent to the authorization request it was made for


@dataclass(frozen=True)
class SignInSession:
    session_hash: str  # SHA-256 of the random value in the browser's cookie
    agent_user_id: str
    binding: str  # `request_binding` of the authorization request
    expires_at_ms: int

    def valid_for(self, binding: str, now_ms: int) -> bool:
        return now_ms < self.expires_at_ms and hmac.compare_digest(self.binding, binding)


def request_binding(values: Sequence[str | None]) -> str:
    """What a sign-in session is bound to: the authorization request's client, redirect URI, state, PKCE challenge
    and method, scope and response type, hashed (the session keeps no copy of them)."""
    return hashlib.sha256(json.dumps([value or "" for value in values]).encode()).hexdigest()


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)


class SignInSessions(Protocol):
    def start(self, session: SignInSession, now_ms: int) -> None: ...

    def get(self, session_hash: str) -> SignInSession | None: ...

    def consume(self, session_hash: str) -> SignInSession | None:
        """Atomically deletes the session and returns it: of two consents with one session, one gets it."""
        ...
