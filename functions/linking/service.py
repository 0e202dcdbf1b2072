"""Account linking: the rules of the OAuth 2.0 authorization server through which Google links a user's account.

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
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import urlsplit

from functions.core import tokens
from functions.core.tokens import TokenRecord

log = logging.getLogger(__name__)

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


# The service


class AccountLinking:
    def __init__(
        self,
        clients: ClientRegistry,
        users: UserDirectory,
        throttle: SignInThrottle,
        grants: GrantStore,
        links: LinkMarker,
        clock: Callable[[], int] = now_ms,
        refresh_grace_s: int = REFRESH_GRACE_S,
    ) -> None:
        if refresh_grace_s < MIN_REFRESH_GRACE_S:
            raise ValueError(f"the refresh grace window must be at least {MIN_REFRESH_GRACE_S} s")
        self.clients = clients
        self.users = users
        self.throttle = throttle
        self.grants = grants
        self.links = links
        self.clock = clock
        self.refresh_grace_s = refresh_grace_s

    def client(self, client_id: str) -> OAuthClient | None:
        if client_id_problem(client_id):
            return None
        return self.clients.get(client_id)

    def account(self, agent_user_id: str) -> Account | None:
        return self.users.get(agent_user_id)

    def sign_in(self, email: str, password: str) -> SignIn:
        """Checks a password, counting the attempt against the account's limit whether the account exists or not."""
        key = account_key(email)
        wait_ms = self.throttle.attempt(key, self.clock())
        if wait_ms > 0:
            log.warning("sign-in throttled", extra={"accountKey": key[:12]})
            return SignIn(None, retry_after_s=max(1, -(-wait_ms // 1000)))
        if email_problem(email) or len(password) > MAX_PASSWORD_LENGTH:
            return SignIn(None)
        account = self.users.authenticate(email, password)
        if account is None:
            log.info("sign-in failed", extra={"accountKey": key[:12]})
            return SignIn(None)
        self.throttle.reset(key)
        log.info("signed in", extra={"agentUserId": account.agent_user_id})
        return SignIn(account)

    # authorization endpoint

    def save_code(
        self,
        code: str,
        account: Account,
        client_id: str,
        redirect_uri: str | None,
        scope: str,
        code_challenge: str | None,
        code_challenge_method: str | None,
    ) -> None:
        """Stores a code minted with `tokens.mint(CODE, ...)` (its hash) for `CODE_TTL_S` seconds."""
        now = self.clock()
        record = TokenRecord(
            tokens.hash_token(code), tokens.CODE, account.agent_user_id, now + CODE_TTL_S * 1000, client_id=client_id
        )
        grant = GrantToken(
            record,
            grant_id=secrets.token_hex(16),
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method if code_challenge else None,
        )
        self.grants.add(grant, now)
        log.info("authorization code issued", extra={"agentUserId": account.agent_user_id, "clientId": client_id})

    # token endpoint

    def _find(self, token: str, kind: str) -> GrantToken | None:
        """The stored grant named by a well-formed token of `kind` (validity not yet checked)."""
        named = tokens.parse(token)
        if named is None or named[0] != kind:
            return None
        found = self.grants.get(tokens.hash_token(token))
        return found if found is not None and found.agent_user_id == named[1] else None

    def find_code(self, code: str, client_id: str) -> GrantToken | None:
        """The code's grant if `client_id` may redeem it now; a code used before revokes its grant (RFC 6749 4.1.2)."""
        found = self._find(code, tokens.CODE)
        if found is None:
            return None
        if found.used_at_ms is not None:
            revoked = self.grants.revoke_grant(found.grant_id)
            log.warning(
                "authorization code replayed: its tokens are revoked",
                extra={"agentUserId": found.agent_user_id, "clientId": found.client_id, "revoked": revoked},
            )
            return None
        now = self.clock()
        if not found.record.grants(code, tokens.CODE, found.agent_user_id, now) or not code_redeemable(found, now):
            return None
        return found if found.client_id == client_id else None

    def find_refresh_token(self, refresh_token: str) -> GrantToken | None:
        """The refresh token's grant if it still works (its client is checked by the caller)."""
        found = self._find(refresh_token, tokens.REFRESH)
        if found is None or not found.record.grants(refresh_token, tokens.REFRESH, found.agent_user_id, self.clock()):
            return None
        return found

    def _issued(self, grant: GrantToken, issued: IssuedTokens, now: int) -> list[GrantToken]:
        user, client_id = grant.agent_user_id, grant.client_id
        records = [
            GrantToken(
                TokenRecord(
                    tokens.hash_token(issued.access_token),
                    tokens.ACCESS,
                    user,
                    now + ACCESS_TTL_S * 1000,
                    client_id=client_id,
                ),
                grant.grant_id,
                grant.scope,
            )
        ]
        if issued.refresh_token is not None:
            records.append(
                GrantToken(
                    TokenRecord(
                        tokens.hash_token(issued.refresh_token),
                        tokens.REFRESH,
                        user,
                        now + REFRESH_TTL_S * 1000,
                        client_id=client_id,
                    ),
                    grant.grant_id,
                    grant.scope,
                )
            )
        for token, record in zip((issued.access_token, issued.refresh_token), records, strict=False):
            if tokens.parse(token or "") != (record.record.kind, user):
                raise ValueError("issued tokens must be minted for the grant's user")
        return records

    def exchange_code(self, code: GrantToken, issued: IssuedTokens) -> bool:
        """Stores the tokens minted for a code and uses the code up, atomically; False if it was used meanwhile."""
        now = self.clock()
        records = self._issued(code, issued, now)
        # Before the tokens exist, so that whenever they do, the user counts as linked.
        self.links.mark_linked(code.agent_user_id, now)
        if not self.grants.redeem_code(code.record.token_hash, records, now):
            log.warning("authorization code used concurrently", extra={"agentUserId": code.agent_user_id})
            return False
        log.info(
            "tokens issued for a code",
            extra={"agentUserId": code.agent_user_id, "clientId": code.client_id, "refresh": len(records) > 1},
        )
        return True

    def refresh(self, refresh: GrantToken, issued: IssuedTokens) -> bool:
        """Stores the tokens minted for a refresh and rotates the used refresh token; False if it stopped working."""
        now = self.clock()
        records = self._issued(refresh, issued, now)
        grace_until = now + self.refresh_grace_s * 1000
        if not self.grants.rotate_refresh(refresh.record.token_hash, records, grace_until, now):
            return False
        log.info("tokens refreshed", extra={"agentUserId": refresh.agent_user_id, "clientId": refresh.client_id})
        return True
