"""In-memory implementations of the account-linking ports, for unit tests (no I/O; same rules as Firestore's).

tests/contracts/test_linking_stores.py holds them to functions/linking/store.py: creating what exists fails as
there (the same exceptions), and one lock per store makes each call atomic like Firestore's transactions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace

from functions.linking import model as linking
from functions.linking.model import Account, AttemptWindow, GrantToken, OAuthClient


class MemoryClients:
    def __init__(self, *clients: OAuthClient) -> None:
        self.clients = {client.client_id: client for client in clients}

    def get(self, client_id: str) -> OAuthClient | None:
        return self.clients.get(client_id)


class MemoryUsers:
    """Accounts with their passwords hashed by `hash_password` (argon2 unless a test passes something faster)."""

    def __init__(self) -> None:
        from functions.linking import passwords

        self._passwords = passwords
        self.accounts: dict[str, tuple[Account, str]] = {}

    def add(self, email: str, password: str) -> Account:
        """A new account with a new agentUserId; AlreadyExists (as in the Firestore directory) if the e-mail has one."""
        key = linking.account_key(email)
        if key in self.accounts:
            from functions.linking.store import AlreadyExists

            raise AlreadyExists(linking.normalize_email(email))
        account = Account(linking.new_agent_user_id(), linking.normalize_email(email))
        self.accounts[key] = (account, self._passwords.hash_password(password))
        return account

    def authenticate(self, email: str, password: str) -> Account | None:
        found = self.accounts.get(linking.account_key(email))
        if found is None:
            self._passwords.spend_verification_time(password)
            return None
        return found[0] if self._passwords.verify_password(found[1], password) else None

    def find(self, email: str) -> Account | None:
        found = self.accounts.get(linking.account_key(email))
        return found[0] if found else None

    def get(self, agent_user_id: str) -> Account | None:
        return next((account for account, _ in self.accounts.values() if account.agent_user_id == agent_user_id), None)


class MemoryThrottle:
    def __init__(
        self, max_attempts: int = linking.MAX_SIGN_IN_ATTEMPTS, window_s: int = linking.SIGN_IN_WINDOW_S
    ) -> None:
        self.windows: dict[str, AttemptWindow] = {}
        self.max_attempts = max_attempts
        self.window_s = window_s
        self._lock = threading.Lock()

    def attempt(self, key: str, now_ms: int) -> int:
        with self._lock:
            window, wait_ms = linking.count_attempt(self.windows.get(key), now_ms, self.max_attempts, self.window_s)
            self.windows[key] = window
            return wait_ms

    def reset(self, key: str) -> None:
        self.windows.pop(key, None)


class MemoryGrants:
    def __init__(self) -> None:
        self.tokens: dict[str, GrantToken] = {}
        self._lock = threading.RLock()

    def get(self, token_hash: str) -> GrantToken | None:
        return self.tokens.get(token_hash)

    def _refuse_existing(self, hashes: Iterable[str]) -> None:
        """The adapter creates every new token: one whose hash is stored already fails the whole write, with
        AlreadyExists (as in the Firestore grant store)."""
        taken = sorted(token_hash for token_hash in hashes if token_hash in self.tokens)
        if taken:
            from functions.linking.store import AlreadyExists

            raise AlreadyExists(f"token {taken[0][:12]}... exists")

    def add(self, token: GrantToken, now_ms: int) -> None:
        with self._lock:
            self._refuse_existing([token.record.token_hash])
            self.tokens[token.record.token_hash] = token

    def redeem_code(self, code_hash: str, issued: Sequence[GrantToken], now_ms: int) -> bool:
        with self._lock:
            code = self.tokens.get(code_hash)
            if code is None or not linking.code_redeemable(code, now_ms):
                return False
            self._refuse_existing(token.record.token_hash for token in issued)
            self.tokens[code_hash] = replace(code, used_at_ms=now_ms)
            self.tokens.update({token.record.token_hash: token for token in issued})
            return True

    def rotate_refresh(self, refresh_hash: str, issued: Sequence[GrantToken], grace_until_ms: int, now_ms: int) -> bool:
        with self._lock:
            current = self.tokens.get(refresh_hash)
            after = linking.rotated(current, grace_until_ms, now_ms) if current is not None else None
            if after is None:
                return False
            self._refuse_existing(token.record.token_hash for token in issued)
            self.tokens[refresh_hash] = after
            self.tokens.update({token.record.token_hash: token for token in issued})
            return True

    def revoke_grant(self, grant_id: str) -> int:
        if not grant_id:  # tokens from outside a grant (no grantId) are not one grant (the adapter: 0)
            return 0
        with self._lock:
            doomed = [h for h, token in self.tokens.items() if token.grant_id == grant_id]
            for token_hash in doomed:
                del self.tokens[token_hash]
            return len(doomed)

    def disconnect(self, agent_user_id: str) -> int:
        """What the fulfillment's DISCONNECT does to the token store: every token of the user goes."""
        with self._lock:
            doomed = [h for h, token in self.tokens.items() if token.agent_user_id == agent_user_id]
            for token_hash in doomed:
                del self.tokens[token_hash]
            return len(doomed)


class MemoryLinks:
    def __init__(self) -> None:
        self.linked: dict[str, int] = {}

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        self.linked[agent_user_id] = now_ms
