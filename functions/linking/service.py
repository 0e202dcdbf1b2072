"""Account linking: the rules of the OAuth 2.0 authorization server through which Google links a user's account.

Transport-free. Authlib (functions/linking/oauth.py) speaks the protocol and calls this service for every decision
that touches storage: which clients exist, who signs in, which codes and refresh tokens are still good. The records
and store interfaces it works with are in functions.linking.model (grants, sessions) and functions.linking.throttling.

Every token issued from one authorization code shares a `grant_id`: a replayed code, or a rotated refresh token
used after its grace window, revokes exactly that grant (RFC 6749 section 4.1.2, RFC 9700 section 4.14.2) and no
other link of the same account.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from functions.core import tokens
from functions.core.tokens import TokenRecord
from functions.linking import successors, throttling
from functions.linking.model import (
    ACCESS_TTL_S,
    CODE_TTL_S,
    MAX_PASSWORD_LENGTH,
    MIN_REFRESH_GRACE_S,
    REFRESH_GRACE_S,
    REFRESH_TTL_S,
    REUSE_DETECTION_S,
    SESSION_TTL_S,
    Account,
    ClientRegistry,
    Grant,
    GrantStore,
    GrantToken,
    IssuedTokens,
    LinkMarker,
    OAuthClient,
    SignIn,
    SignInSession,
    SignInSessions,
    UserDirectory,
    account_key,
    client_id_problem,
    code_redeemable,
    email_problem,
    new_session_secret,
    now_ms,
)
from functions.linking.throttling import DEFAULT_LIMITS, AttemptCounters, Counter, Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refreshed:
    """The answer to a refresh: new tokens, or the same successor again for a repeat inside the grace window."""

    tokens: IssuedTokens
    expires_in: int
    scope: str


class AccountLinking:
    def __init__(
        self,
        clients: ClientRegistry,
        users: UserDirectory,
        attempts: AttemptCounters,
        sessions: SignInSessions,
        grants: GrantStore,
        links: LinkMarker,
        clock: Callable[[], int] = now_ms,
        refresh_grace_s: int = REFRESH_GRACE_S,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if refresh_grace_s < MIN_REFRESH_GRACE_S:
            raise ValueError(f"the refresh grace window must be at least {MIN_REFRESH_GRACE_S} s")
        self.clients = clients
        self.users = users
        self.attempts = attempts
        self.sessions = sessions
        self.grants = grants
        self.links = links
        self.clock = clock
        self.refresh_grace_s = refresh_grace_s
        self.limits = limits

    def client(self, client_id: str) -> OAuthClient | None:
        if client_id_problem(client_id):
            return None
        return self.clients.get(client_id)

    def account(self, agent_user_id: str) -> Account | None:
        return self.users.get(agent_user_id)

    # signing in

    def sign_in(self, email: str, password: str, client: str, device: str | None = None) -> SignIn:
        """Checks a password unless the attempt is held back (see functions.linking.throttling).

        `client` is the client's IP as the trusted front end saw it; `device` the id of a device cookie this
        browser proved for this e-mail address (a browser that signed in to the account before), if any."""
        key = account_key(email)
        now = self.clock()
        held = self._reserve(key, throttling.client_key(client), device, now)
        if isinstance(held, int):
            log.warning("sign-in held back", extra={"accountKey": key[:12], "retryAfterS": held})
            return SignIn(None, retry_after_s=held)
        if email_problem(email) or len(password) > MAX_PASSWORD_LENGTH:
            return SignIn(None)
        account = self.users.authenticate(email, password)
        if account is None:
            log.info("sign-in failed", extra={"accountKey": key[:12], "trustedDevice": device is not None})
            return SignIn(None)
        for counter in held:  # a right password gives back the failures counted for it
            if counter.scope == throttling.ACCOUNT_IP:
                self.attempts.delete(counter)  # the owner's own typos from here are forgiven
            else:
                self.attempts.add(counter, -1)
        log.info("signed in", extra={"agentUserId": account.agent_user_id})
        return SignIn(account)

    def _reserve(self, key: str, client: str, device: str | None, now: int) -> list[Counter] | int:
        """Counts the attempt: the failure counters to give back on success, or the seconds to wait."""
        if device is not None:
            counter = throttling.counter(self.limits.device, f"{key}:{device}", now, key)
            if self.attempts.add(counter, 1) <= self.limits.device.max_count:
                return [counter]
            # A device cookie that has failed too often is no longer trusted: the attempt counts as from anywhere.
        reserved: list[Counter] = []
        for limit, material, owner in (
            (self.limits.ip, client, None),
            (self.limits.account_ip, f"{key}:{client}", key),
            (self.limits.account, key, key),
        ):
            counter = throttling.counter(limit, material, now, owner)
            if self.attempts.add(counter, 1) > limit.max_count:
                for earlier in reserved:  # not checked, so not a failure
                    self.attempts.add(earlier, -1)
                return throttling.retry_after_s(counter, now)
            if limit.scope != throttling.IP:  # the IP counts attempts; the account's counters count failures
                reserved.append(counter)
        return reserved

    # sign-in sessions

    def start_session(self, account: Account, binding: str) -> str:
        """A single-use session for the authorization request `binding`; returns the secret for the cookie."""
        now = self.clock()
        secret = new_session_secret()
        session = SignInSession(tokens.hash_token(secret), account.agent_user_id, binding, now + SESSION_TTL_S * 1000)
        self.sessions.start(session, now)
        return secret

    def signed_in(self, secret: str, binding: str) -> Account | None:
        """The account of the session, if it is good for this authorization request; the session stays."""
        if not secret:
            return None
        session = self.sessions.get(tokens.hash_token(secret))
        return self._account_of(session, binding)

    def consume_session(self, secret: str, binding: str) -> Account | None:
        """Ends the session and returns its account if it was good for this request: a consent uses it up, so the
        same cookie value never gives a second code, for this request or another."""
        if not secret:
            return None
        session_hash = tokens.hash_token(secret)
        # Only a consent to the request it was made for uses it up: a forged form for another cannot burn it.
        if self._account_of(self.sessions.get(session_hash), binding) is None:
            return None
        return self._account_of(self.sessions.consume(session_hash), binding)

    def _account_of(self, session: SignInSession | None, binding: str) -> Account | None:
        if session is None or not session.valid_for(binding, self.clock()):
            return None
        return self.users.get(session.agent_user_id)

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
        """Stores a code minted with `tokens.mint(CODE, ...)` (its hash) for `CODE_TTL_S` seconds: a new grant."""
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

    def _revoke(self, found: GrantToken, why: str) -> None:
        revoked = self.grants.revoke_grant(found.grant_id)
        unlinked = self.links.unlink_unless_a_grant_lives(found.agent_user_id, self.clock())
        log.warning(
            f"{why}: its grant is revoked",
            extra={
                "agentUserId": found.agent_user_id,
                "clientId": found.client_id,
                "revoked": revoked,
                "unlinked": unlinked,
            },
        )

    def find_code(self, code: str, client_id: str) -> GrantToken | None:
        """The code's grant if `client_id` may redeem it now; a code used before revokes its grant (RFC 6749 4.1.2)."""
        found = self._find(code, tokens.CODE)
        if found is None:
            return None
        if found.used_at_ms is not None:
            self._revoke(found, "authorization code replayed")
            return None
        now = self.clock()
        if not found.record.grants(code, tokens.CODE, found.agent_user_id, now) or not code_redeemable(found, now):
            return None
        return found if found.client_id == client_id else None

    def find_refresh_token(self, refresh_token: str) -> GrantToken | None:
        """The refresh token's grant if it still works (its client is checked by the caller). A rotated token used
        after its grace window is a reuse: somebody else holds the chain, so the whole grant is revoked."""
        found = self._find(refresh_token, tokens.REFRESH)
        now = self.clock()
        if found is None or not found.record.grants(refresh_token, tokens.REFRESH, found.agent_user_id, now):
            return None
        if found.rotated_at_ms is not None and now >= found.rotated_at_ms + self.refresh_grace_s * 1000:
            self._revoke(found, "rotated refresh token reused")
            return None
        return found

    def _records(self, grant: GrantToken, issued: IssuedTokens, now: int) -> list[GrantToken]:
        user, client_id = grant.agent_user_id, grant.client_id
        lifetimes = (
            (issued.access_token, tokens.ACCESS, ACCESS_TTL_S),
            (issued.refresh_token, tokens.REFRESH, REFRESH_TTL_S),
        )
        records = []
        for token, kind, ttl_s in lifetimes:
            if token is None:
                continue
            if tokens.parse(token) != (kind, user):
                raise ValueError("issued tokens must be minted for the grant's user")
            record = TokenRecord(tokens.hash_token(token), kind, user, now + ttl_s * 1000, client_id=client_id)
            records.append(GrantToken(record, grant.grant_id, grant.scope))
        return records

    def exchange_code(self, code: GrantToken, issued: IssuedTokens) -> bool:
        """Stores the tokens minted for a code, its grant's record, and uses the code up, atomically; False if it was
        used meanwhile."""
        now = self.clock()
        records = self._records(code, issued, now)
        lifetime_s = REFRESH_TTL_S if issued.refresh_token is not None else ACCESS_TTL_S
        grant = Grant(code.grant_id, code.agent_user_id, code.client_id, code.scope, now, now, now + lifetime_s * 1000)
        # Before the tokens exist, so that whenever they do, the user counts as linked.
        self.links.mark_linked(code.agent_user_id, now)
        if not self.grants.redeem_code(code.record.token_hash, grant, records, now):
            log.warning("authorization code used concurrently", extra={"agentUserId": code.agent_user_id})
            return False
        log.info(
            "tokens issued for a code",
            extra={"agentUserId": code.agent_user_id, "clientId": code.client_id, "refresh": len(records) > 1},
        )
        return True

    def refresh(self, refresh: GrantToken, presented: str, scope: str) -> Refreshed | None:
        """The tokens for a refresh with `presented` (whose stored grant is `refresh`): on its first use new ones,
        stored with the rotation; on a repeat inside the grace window the same successor again; else None."""
        now = self.clock()
        if refresh.rotated_at_ms is None:
            user = refresh.agent_user_id
            issued = IssuedTokens(tokens.mint(tokens.ACCESS, user), tokens.mint(tokens.REFRESH, user))
            assert issued.refresh_token is not None
            successor = successors.Successor(
                issued.access_token, issued.refresh_token, now + ACCESS_TTL_S * 1000, scope
            )
            sealed = successors.seal(presented, successor)
            keep_until = now + REUSE_DETECTION_S * 1000
            records = self._records(refresh, issued, now)
            if self.grants.rotate_refresh(refresh.record.token_hash, sealed, records, keep_until, now):
                log.info("tokens refreshed", extra={"agentUserId": user, "clientId": refresh.client_id})
                return Refreshed(issued, ACCESS_TTL_S, scope)
            # Rotated meanwhile by a concurrent refresh: answer with its successor, as for any repeat.
            rotated = self.grants.get(refresh.record.token_hash)
            if rotated is None or rotated.rotated_at_ms is None:
                return None
            refresh = rotated
        return self._same_successor(refresh, presented, now)

    def _same_successor(self, refresh: GrantToken, presented: str, now: int) -> Refreshed | None:
        assert refresh.rotated_at_ms is not None
        if now >= refresh.rotated_at_ms + self.refresh_grace_s * 1000:
            return None
        opened = successors.unseal(presented, refresh.successor or "")
        if opened is None:
            return None  # rotated before successors were kept: nothing to repeat
        again = IssuedTokens(opened.access_token, opened.refresh_token)
        expires_in = max(1, (opened.access_expires_at_ms - now) // 1000)
        log.info("refresh repeated in its grace window", extra={"agentUserId": refresh.agent_user_id})
        return Refreshed(again, expires_in, opened.scope)

    def grants_of(self, agent_user_id: str) -> list[Grant]:
        return self.grants.grants_of(agent_user_id)
