"""In-memory implementations of the account-linking ports, for unit tests (no I/O; same rules as Firestore's).

tests/contracts/test_linking_stores.py holds them to functions/linking/store.py and grant_store.py: creating what
exists fails as there (the same exceptions), and one lock per store makes each call atomic like Firestore's
transactions and increments.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from functions.core import tokens
from functions.linking import model as linking
from functions.linking.model import Account, Grant, GrantToken, OAuthClient, SignInSession
from functions.linking.throttling import Counter


def _already_exists(what: str) -> Exception:
    from functions.linking.store import AlreadyExists

    return AlreadyExists(what)


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
        self.accounts: dict[str, tuple[Account, str, int]] = {}
        self._created = 0

    def add(self, email: str, password: str) -> Account:
        """A new account with a new agentUserId; AlreadyExists (as in the Firestore directory) if the e-mail has one."""
        key = linking.account_key(email)
        if key in self.accounts:
            raise _already_exists(linking.normalize_email(email))
        account = Account(linking.new_agent_user_id(), linking.normalize_email(email))
        self._created += 1
        self.accounts[key] = (account, self._passwords.hash_password(password), self._created)
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
        return next((found[0] for found in self.accounts.values() if found[0].agent_user_id == agent_user_id), None)

    def all_accounts(self) -> list[tuple[Account, int]]:
        """Every account with when it was made (here: a sequence number), in the order of their e-mail addresses."""
        return sorted(((found[0], found[2]) for found in self.accounts.values()), key=lambda pair: pair[0].email)

    def set_password(self, email: str, password: str) -> bool:
        key = linking.account_key(email)
        if key not in self.accounts:
            return False
        account, _, created = self.accounts[key]
        self.accounts[key] = (account, self._passwords.hash_password(password), created)
        return True

    def remove(self, email: str) -> Account | None:
        found = self.accounts.pop(linking.account_key(email), None)
        return found[0] if found else None


class MemoryAttemptCounters:
    def __init__(self) -> None:
        self.counts: dict[str, tuple[Counter, int]] = {}
        self._lock = threading.Lock()

    def add(self, counter: Counter, delta: int) -> int:
        with self._lock:
            value = self.counts.get(counter.document_id, (counter, 0))[1] + delta
            self.counts[counter.document_id] = (counter, value)
            return value

    def delete(self, counter: Counter) -> None:
        with self._lock:
            self.counts.pop(counter.document_id, None)

    def clear_account(self, account_key: str) -> int:
        with self._lock:
            doomed = [key for key, (counter, _) in self.counts.items() if counter.account_key == account_key]
            for key in doomed:
                del self.counts[key]
            return len(doomed)


class MemorySessions:
    def __init__(self) -> None:
        self.sessions: dict[str, SignInSession] = {}
        self._lock = threading.Lock()

    def start(self, session: SignInSession, now_ms: int) -> None:
        with self._lock:
            if session.session_hash in self.sessions:
                raise _already_exists("session exists")
            self.sessions[session.session_hash] = session

    def get(self, session_hash: str) -> SignInSession | None:
        return self.sessions.get(session_hash)

    def consume(self, session_hash: str) -> SignInSession | None:
        with self._lock:
            return self.sessions.pop(session_hash, None)


class MemoryGrants:
    """Codes and tokens of grants, and the grants' records; `disconnect` plays the fulfillment's DISCONNECT on them
    (functions/fulfillment/store.py does it on Firestore), and `unlinked` is who it left without a live grant."""

    def __init__(self) -> None:
        self.tokens: dict[str, GrantToken] = {}
        self.records: dict[str, Grant] = {}
        self.unlinked: set[str] = set()
        self._lock = threading.RLock()

    def get(self, token_hash: str) -> GrantToken | None:
        return self.tokens.get(token_hash)

    def _refuse_existing(self, hashes: Iterable[str]) -> None:
        """The adapter creates every new token: one whose hash is stored already fails the whole write, with
        AlreadyExists (as in the Firestore grant store)."""
        taken = sorted(token_hash for token_hash in hashes if token_hash in self.tokens)
        if taken:
            raise _already_exists(f"token {taken[0][:12]}... exists")

    def add(self, token: GrantToken, now_ms: int) -> None:
        with self._lock:
            self._refuse_existing([token.record.token_hash])
            self.tokens[token.record.token_hash] = token

    def redeem_code(self, code_hash: str, grant: Grant, issued: Sequence[GrantToken], now_ms: int) -> bool:
        with self._lock:
            code = self.tokens.get(code_hash)
            if code is None or not linking.code_redeemable(code, now_ms):
                return False
            self._refuse_existing(token.record.token_hash for token in issued)
            self.tokens[code_hash] = replace(code, used_at_ms=now_ms)
            self.records[grant.grant_id] = grant
            self.tokens.update({token.record.token_hash: token for token in issued})
            return True

    def rotate_refresh(
        self, refresh_hash: str, successor: str, issued: Sequence[GrantToken], keep_until_ms: int, now_ms: int
    ) -> bool:
        with self._lock:
            current = self.tokens.get(refresh_hash)
            after = linking.rotated(current, successor, keep_until_ms, now_ms) if current is not None else None
            if current is None or after is None:
                return False
            self._refuse_existing(token.record.token_hash for token in issued)
            self.tokens[refresh_hash] = after
            if current.grant_id:
                newest = max((token.record.expires_at_ms for token in issued), default=now_ms)
                record = linking.touched(self.records.get(current.grant_id), current, now_ms, newest)
                self.records[current.grant_id] = record
            self.tokens.update({token.record.token_hash: token for token in issued})
            return True

    def revoke_grant(self, grant_id: str) -> int:
        if not grant_id:  # tokens from outside a grant (no grantId) are not one grant (the adapter: 0)
            return 0
        with self._lock:
            doomed = [h for h, token in self.tokens.items() if token.grant_id == grant_id]
            for token_hash in doomed:
                del self.tokens[token_hash]
            return len(doomed) + (1 if self.records.pop(grant_id, None) is not None else 0)

    def grants_of(self, agent_user_id: str) -> list[Grant]:
        mine = [grant for grant in self.records.values() if grant.agent_user_id == agent_user_id]
        return sorted(mine, key=lambda grant: (grant.created_at_ms, grant.grant_id))

    def disconnect(self, agent_user_id: str, now_ms: int, token_hash: str | None = None) -> int:
        """The fulfillment's DISCONNECT: revokes the grant of the token (every grant of the user for None; the
        tokens without a grant count as one), then marks the user unlinked unless a grant of theirs is live."""
        with self._lock:
            mine = {h: token for h, token in self.tokens.items() if token.agent_user_id == agent_user_id}
            if token_hash is None:
                doomed_grants = {grant.grant_id for grant in self.grants_of(agent_user_id)}
                doomed = set(mine)
            elif token_hash in mine:
                grant_id = mine[token_hash].grant_id
                doomed_grants = {grant_id} if grant_id else set()
                doomed = {h for h, token in mine.items() if token.grant_id == grant_id}
            else:
                doomed_grants, doomed = set(), set()
            for doomed_hash in doomed:
                del self.tokens[doomed_hash]
            revoked = len(doomed) + sum(self.records.pop(g, None) is not None for g in doomed_grants)
            if not self.live(agent_user_id, now_ms):
                self.unlinked.add(agent_user_id)
            return revoked

    def live(self, agent_user_id: str, now_ms: int) -> bool:
        """Whether a grant of the user is still live: a live record, or a live token of a grant without one."""
        if any(grant.live(now_ms) for grant in self.grants_of(agent_user_id)):
            return True
        return any(
            token.agent_user_id == agent_user_id
            and token.record.kind in (tokens.ACCESS, tokens.REFRESH)
            and token.rotated_at_ms is None
            and not token.record.revoked
            and now_ms < token.record.expires_at_ms
            for token in self.tokens.values()
        )

    def of_user(self, agent_user_id: str) -> Iterator[GrantToken]:
        return (token for token in self.tokens.values() if token.agent_user_id == agent_user_id)


class MemoryLinks:
    """users/{u}.linked: `linked` holds when each user was marked linked, `unlinked` when unlinked; whether a grant
    still lives is asked of `grants` (the Firestore store reads the same token store)."""

    def __init__(self, grants: MemoryGrants | None = None) -> None:
        self.linked: dict[str, int] = {}
        self.unlinked: dict[str, int] = {}
        self.grants = grants

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        self.linked[agent_user_id] = now_ms
        self.unlinked.pop(agent_user_id, None)

    def unlink_unless_a_grant_lives(self, agent_user_id: str, now_ms: int) -> bool:
        if self.grants is not None and self.grants.live(agent_user_id, now_ms):
            return False
        self.linked.pop(agent_user_id, None)
        self.unlinked[agent_user_id] = now_ms
        return True
