"""In-memory implementations of the account-linking ports, for unit tests (no I/O; same rules as Firestore's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from functions.linking import service as linking
from functions.linking.service import Account, AttemptWindow, GrantToken, OAuthClient


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
        account = Account(linking.new_agent_user_id(), linking.normalize_email(email))
        self.accounts[linking.account_key(email)] = (account, self._passwords.hash_password(password))
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

    def attempt(self, key: str, now_ms: int) -> int:
        window, wait_ms = linking.count_attempt(self.windows.get(key), now_ms, self.max_attempts, self.window_s)
        self.windows[key] = window
        return wait_ms

    def reset(self, key: str) -> None:
        self.windows.pop(key, None)


class MemoryGrants:
    def __init__(self) -> None:
        self.tokens: dict[str, GrantToken] = {}

    def get(self, token_hash: str) -> GrantToken | None:
        return self.tokens.get(token_hash)

    def add(self, token: GrantToken, now_ms: int) -> None:
        self.tokens[token.record.token_hash] = token

    def redeem_code(self, code_hash: str, issued: Sequence[GrantToken], now_ms: int) -> bool:
        code = self.tokens.get(code_hash)
        if code is None or not linking.code_redeemable(code, now_ms):
            return False
        self.tokens[code_hash] = replace(code, used_at_ms=now_ms)
        self.tokens.update({token.record.token_hash: token for token in issued})
        return True

    def rotate_refresh(self, refresh_hash: str, issued: Sequence[GrantToken], grace_until_ms: int, now_ms: int) -> bool:
        current = self.tokens.get(refresh_hash)
        after = linking.rotated(current, grace_until_ms, now_ms) if current is not None else None
        if after is None:
            return False
        self.tokens[refresh_hash] = after
        self.tokens.update({token.record.token_hash: token for token in issued})
        return True

    def revoke_grant(self, grant_id: str) -> int:
        doomed = [h for h, token in self.tokens.items() if token.grant_id == grant_id]
        for token_hash in doomed:
            del self.tokens[token_hash]
        return len(doomed)

    def disconnect(self, agent_user_id: str) -> int:
        """What the fulfillment's DISCONNECT does to the token store: every token of the user goes."""
        doomed = [h for h, token in self.tokens.items() if token.agent_user_id == agent_user_id]
        for token_hash in doomed:
            del self.tokens[token_hash]
        return len(doomed)


class MemoryLinks:
    def __init__(self) -> None:
        self.linked: dict[str, int] = {}

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        self.linked[agent_user_id] = now_ms
