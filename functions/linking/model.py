"""Account linking's model: accounts, sign-in throttling, OAuth clients and grants, and the stores they need.

The rules that use them are the AccountLinking service (functions.linking.service).

Transport-free. Authlib (functions/linking/oauth.py) speaks the protocol and calls this service for every decision
that touches storage: which clients exist, who signs in, which codes and refresh tokens are still good.

Codes, access and refresh tokens are `functions.core.tokens` tokens (`ac.`, `at.`, `rt.`), stored only as their
SHA-256 in the same token store the fulfillment reads, and checked with `TokenRecord.grants` (constant-time
comparison). Every token issued from one authorization code shares a `grant_id`, so that a replayed code revokes
exactly what that code produced (RFC 6749 section 4.1.2).

Refresh tokens rotate: each use returns a new one, and the used one keeps working for `REFRESH_GRACE_S` more
seconds, because Google sends concurrent refreshes and a strict rotation would unlink users at random.
"""

from __future__ import annotations

import hashlib
import hmac
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

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type's name
GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN)
S256 = "S256"

# Sign-in attempts per account and window; the count is kept whatever the outcome, so guessing is bounded.
MAX_SIGN_IN_ATTEMPTS = 5
SIGN_IN_WINDOW_S = 15 * 60
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


# Sign-in throttling


@dataclass(frozen=True)
class AttemptWindow:
    started_ms: int
    attempts: int


def count_attempt(
    window: AttemptWindow | None,
    now: int,
    max_attempts: int = MAX_SIGN_IN_ATTEMPTS,
    window_s: int = SIGN_IN_WINDOW_S,
) -> tuple[AttemptWindow, int]:
    """Counts one sign-in attempt: (the window to store, 0) if it may go ahead, else (window, ms to wait)."""
    if window is None or now - window.started_ms >= window_s * 1000 or now < window.started_ms:
        window = AttemptWindow(now, 0)
    if window.attempts >= max_attempts:
        return window, window.started_ms + window_s * 1000 - now
    return AttemptWindow(window.started_ms, window.attempts + 1), 0


class SignInThrottle(Protocol):
    def attempt(self, key: str, now_ms: int) -> int:
        """Counts an attempt on the account `key` atomically; 0 if it may go ahead, else ms until it may."""
        ...

    def reset(self, key: str) -> None:
        """Forgets the attempts on `key` (after a successful sign-in)."""
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
    """A stored code or token (only its hash) with the authorization it carries."""

    record: TokenRecord
    grant_id: str
    scope: str = ""
    redirect_uri: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    used_at_ms: int | None = None
    rotated_at_ms: int | None = None

    @property
    def agent_user_id(self) -> str:
        return self.record.agent_user_id

    @property
    def client_id(self) -> str | None:
        return self.record.client_id


def code_redeemable(code: GrantToken, now: int) -> bool:
    record = code.record
    return record.kind == tokens.CODE and code.used_at_ms is None and not record.revoked and now < record.expires_at_ms


def rotated(refresh: GrantToken, grace_until_ms: int, now: int) -> GrantToken | None:
    """The refresh token as it is after one more use at `now`, or None if it no longer works.

    Its first use shortens its life to the grace window; later uses inside the window leave it as it is."""
    record = refresh.record
    if record.kind != tokens.REFRESH or record.revoked or now >= record.expires_at_ms:
        return None
    if refresh.rotated_at_ms is not None:
        return refresh
    shortened = replace(record, expires_at_ms=min(record.expires_at_ms, grace_until_ms))
    return replace(refresh, record=shortened, rotated_at_ms=now)


class GrantStore(Protocol):
    def get(self, token_hash: str) -> GrantToken | None: ...

    def add(self, token: GrantToken, now_ms: int) -> None: ...

    def redeem_code(self, code_hash: str, issued: Sequence[GrantToken], now_ms: int) -> bool:
        """Atomically: if the code is still `code_redeemable`, marks it used and stores `issued`; else writes
        nothing and returns False."""
        ...

    def rotate_refresh(self, refresh_hash: str, issued: Sequence[GrantToken], grace_until_ms: int, now_ms: int) -> bool:
        """Atomically: if the refresh token still works (`rotated`), stores its rotated form and `issued`; else
        writes nothing and returns False."""
        ...

    def revoke_grant(self, grant_id: str) -> int:
        """Deletes every code and token of the grant; returns how many."""
        ...


class LinkMarker(Protocol):
    def mark_linked(self, agent_user_id: str, now_ms: int) -> None: ...


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str | None
