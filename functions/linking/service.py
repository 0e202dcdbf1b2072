"""Account linking: the rules of the OAuth 2.0 authorization server through which Google links a user's account.

Transport-free. Authlib (functions/linking/oauth.py) speaks the protocol and calls this service for every decision
that touches storage: which clients exist, who signs in, which codes and refresh tokens are still good. The records
and store interfaces it works with are in functions.linking.model.

Codes, access and refresh tokens are `functions.core.tokens` tokens (`ac.`, `at.`, `rt.`), stored only as their
SHA-256 in the same token store the fulfillment reads, and checked with `TokenRecord.grants` (constant-time
comparison). Every token issued from one authorization code shares a `grant_id`, so that a replayed code revokes
exactly what that code produced (RFC 6749 section 4.1.2).

Refresh tokens rotate: each use returns a new one, and the used one keeps working for `REFRESH_GRACE_S` more
seconds, because Google sends concurrent refreshes and a strict rotation would unlink users at random.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from functions.core import tokens
from functions.core.tokens import TokenRecord
from functions.linking.model import (
    ACCESS_TTL_S,
    CODE_TTL_S,
    MAX_PASSWORD_LENGTH,
    MIN_REFRESH_GRACE_S,
    REFRESH_GRACE_S,
    REFRESH_TTL_S,
    Account,
    ClientRegistry,
    GrantStore,
    GrantToken,
    IssuedTokens,
    LinkMarker,
    OAuthClient,
    SignIn,
    SignInThrottle,
    UserDirectory,
    account_key,
    client_id_problem,
    code_redeemable,
    email_problem,
    now_ms,
)

log = logging.getLogger(__name__)


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
