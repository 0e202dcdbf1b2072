"""Firestore storage for account linking: OAuth clients, sign-in accounts, sign-in throttling and grants.

Layout (besides the fulfillment's users/ and tokens/):
    oauthClients/{clientId}          name, secretHash (SHA-256), redirectUris, scopes, grantTypes, createdAt
    accounts/{sha256(e-mail)}        email, agentUserId, passwordHash (argon2id), createdAt
    signInAttempts/{sha256(e-mail)}  windowStart, attempts, expiresAt (TTL)
    tokens/{sha256(token)}           the fulfillment's token fields (kind, agentUserId, clientId, expiresAt, revoked,
                                     createdAt) plus grantId, scope, and for codes redirectUri, codeChallenge,
                                     codeChallengeMethod, usedAt; for rotated refresh tokens rotatedAt

`expiresAt` on tokens/ and signInAttempts/ is meant for Firestore TTL policies, which delete expired documents.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from functions.linking import model as linking
from functions.linking import passwords
from functions.linking.model import (
    Account,
    AttemptWindow,
    GrantToken,
    OAuthClient,
    account_key,
    code_redeemable,
    count_attempt,
    normalize_email,
    rotated,
)
from functions.platform import firestore as base

CLIENTS = "oauthClients"
ACCOUNTS = "accounts"
SIGN_IN_ATTEMPTS = "signInAttempts"


class AlreadyExists(Exception):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Clients


def client_from_document(client_id: str, data: dict[str, Any]) -> OAuthClient:
    return OAuthClient(
        client_id=client_id,
        name=str(data.get("name") or client_id),
        secret_hash=str(data.get("secretHash", "")),
        redirect_uris=tuple(str(uri) for uri in data.get("redirectUris", [])),
        scopes=tuple(str(scope) for scope in data.get("scopes", [])),
        grant_types=tuple(str(grant) for grant in data.get("grantTypes", linking.GRANT_TYPES)),
    )


class FirestoreClientRegistry:
    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or base.client()

    def get(self, client_id: str) -> OAuthClient | None:
        snap = self._db.collection(CLIENTS).document(client_id).get()
        return client_from_document(client_id, snap.to_dict() or {}) if snap.exists else None

    def add(self, client: OAuthClient, replace: bool = False) -> None:
        document = {
            "name": client.name,
            "secretHash": client.secret_hash,
            "redirectUris": list(client.redirect_uris),
            "scopes": list(client.scopes),
            "grantTypes": list(client.grant_types),
            "createdAt": _now(),
        }
        ref = self._db.collection(CLIENTS).document(client.client_id)
        if replace:
            ref.set(document)
            return
        try:
            ref.create(document)
        except google_errors.AlreadyExists as exists:
            raise AlreadyExists(client.client_id) from exists


# Accounts


class FirestoreUserDirectory:
    """The embedded identity provider: e-mail and argon2id password hash per account."""

    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or base.client()

    def _ref(self, email: str) -> Any:
        return self._db.collection(ACCOUNTS).document(account_key(email))

    def authenticate(self, email: str, password: str) -> Account | None:
        snap = self._ref(email).get()
        if not snap.exists:
            passwords.spend_verification_time(password)
            return None
        data = snap.to_dict() or {}
        stored = str(data.get("passwordHash", ""))
        if not passwords.verify_password(stored, password):
            return None
        if passwords.needs_rehash(stored):
            snap.reference.update({"passwordHash": passwords.hash_password(password)})
        return Account(str(data["agentUserId"]), str(data.get("email", "")))

    def get(self, agent_user_id: str) -> Account | None:
        query = self._db.collection(ACCOUNTS).where(filter=firestore.FieldFilter("agentUserId", "==", agent_user_id))
        for snap in query.limit(1).stream():
            data = snap.to_dict() or {}
            return Account(agent_user_id, str(data.get("email", "")))
        return None

    def find(self, email: str) -> Account | None:
        snap = self._ref(email).get()
        if not snap.exists:
            return None
        data = snap.to_dict() or {}
        return Account(str(data["agentUserId"]), str(data.get("email", "")))

    def add(self, email: str, password: str) -> Account:
        """Creates the account with a new agentUserId; AlreadyExists if the e-mail has one."""
        account = Account(linking.new_agent_user_id(), normalize_email(email))
        document = {
            "email": account.email,
            "agentUserId": account.agent_user_id,
            "passwordHash": passwords.hash_password(password),
            "createdAt": _now(),
        }
        try:
            self._ref(email).create(document)
        except google_errors.AlreadyExists as exists:
            raise AlreadyExists(account.email) from exists
        return account

    def set_password(self, email: str, password: str) -> bool:
        try:
            self._ref(email).update({"passwordHash": passwords.hash_password(password)})
        except google_errors.NotFound:
            return False
        return True


# Sign-in throttling


class FirestoreSignInThrottle:
    def __init__(
        self,
        db: firestore.Client | None = None,
        max_attempts: int = linking.MAX_SIGN_IN_ATTEMPTS,
        window_s: int = linking.SIGN_IN_WINDOW_S,
    ) -> None:
        self._db = db or base.client()
        self.max_attempts = max_attempts
        self.window_s = window_s

    def attempt(self, key: str, now_ms: int) -> int:
        ref = self._db.collection(SIGN_IN_ATTEMPTS).document(key)

        @firestore.transactional
        def count(transaction: Any) -> int:
            snap = ref.get(transaction=transaction)
            data = (snap.to_dict() or {}) if snap.exists else None
            window = (
                AttemptWindow(base.to_ms(data.get("windowStart")), int(data.get("attempts", 0)))
                if data is not None
                else None
            )
            counted, wait_ms = count_attempt(window, now_ms, self.max_attempts, self.window_s)
            if counted != window:
                transaction.set(
                    ref,
                    {
                        "windowStart": base.to_datetime(counted.started_ms),
                        "attempts": counted.attempts,
                        "expiresAt": base.to_datetime(counted.started_ms + self.window_s * 1000),
                    },
                )
            return wait_ms

        return int(count(self._db.transaction()))

    def reset(self, key: str) -> None:
        self._db.collection(SIGN_IN_ATTEMPTS).document(key).delete()


# Grants


def grant_document(token: GrantToken, now_ms: int) -> dict[str, Any]:
    document = base.token_document(token.record, now_ms)
    document.update(grantId=token.grant_id, scope=token.scope)
    optional = {
        "redirectUri": token.redirect_uri,
        "codeChallenge": token.code_challenge,
        "codeChallengeMethod": token.code_challenge_method,
        "usedAt": base.to_datetime(token.used_at_ms) if token.used_at_ms is not None else None,
        "rotatedAt": base.to_datetime(token.rotated_at_ms) if token.rotated_at_ms is not None else None,
    }
    document.update({key: value for key, value in optional.items() if value is not None})
    return document


def grant_from_document(token_hash: str, data: dict[str, Any]) -> GrantToken:
    def optional_ms(name: str) -> int | None:
        return base.to_ms(data[name]) if data.get(name) is not None else None

    return GrantToken(
        record=base.token_from_document(token_hash, data),
        grant_id=str(data.get("grantId", "")),
        scope=str(data.get("scope", "")),
        redirect_uri=data.get("redirectUri"),
        code_challenge=data.get("codeChallenge"),
        code_challenge_method=data.get("codeChallengeMethod"),
        used_at_ms=optional_ms("usedAt"),
        rotated_at_ms=optional_ms("rotatedAt"),
    )


@contextlib.contextmanager
def _issued_exists() -> Iterator[None]:
    """A transaction creating a token whose hash is stored already fails as a whole: our AlreadyExists, not the
    SDK's, as from every store of this module."""
    try:
        yield
    except google_errors.AlreadyExists as exists:
        raise AlreadyExists("an issued token exists") from exists


class FirestoreGrantStore:
    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or base.client()

    def _ref(self, token_hash: str) -> Any:
        return self._db.collection(base.TOKENS).document(token_hash)

    def get(self, token_hash: str) -> GrantToken | None:
        snap = self._ref(token_hash).get()
        return grant_from_document(token_hash, snap.to_dict() or {}) if snap.exists else None

    def add(self, token: GrantToken, now_ms: int) -> None:
        """Stores a new token; AlreadyExists if its hash is stored already."""
        try:
            self._ref(token.record.token_hash).create(grant_document(token, now_ms))
        except google_errors.AlreadyExists as exists:
            raise AlreadyExists(f"token {token.record.token_hash[:12]}... exists") from exists

    def _store_issued(self, transaction: Any, issued: Sequence[GrantToken], now_ms: int) -> None:
        for token in issued:
            transaction.create(self._ref(token.record.token_hash), grant_document(token, now_ms))

    def redeem_code(self, code_hash: str, issued: Sequence[GrantToken], now_ms: int) -> bool:
        """AlreadyExists (nothing written) if an issued token's hash is stored already."""
        ref = self._ref(code_hash)

        @firestore.transactional
        def redeem(transaction: Any) -> bool:
            snap = ref.get(transaction=transaction)
            if not snap.exists or not code_redeemable(grant_from_document(code_hash, snap.to_dict() or {}), now_ms):
                return False
            transaction.update(ref, {"usedAt": base.to_datetime(now_ms)})
            self._store_issued(transaction, issued, now_ms)
            return True

        with _issued_exists():
            return bool(redeem(self._db.transaction()))

    def rotate_refresh(self, refresh_hash: str, issued: Sequence[GrantToken], grace_until_ms: int, now_ms: int) -> bool:
        """AlreadyExists (nothing written) if an issued token's hash is stored already."""
        ref = self._ref(refresh_hash)

        @firestore.transactional
        def rotate(transaction: Any) -> bool:
            snap = ref.get(transaction=transaction)
            if not snap.exists:
                return False
            current = grant_from_document(refresh_hash, snap.to_dict() or {})
            after = rotated(current, grace_until_ms, now_ms)
            if after is None:
                return False
            if after != current:
                assert after.rotated_at_ms is not None
                transaction.update(
                    ref,
                    {
                        "expiresAt": base.to_datetime(after.record.expires_at_ms),
                        "rotatedAt": base.to_datetime(after.rotated_at_ms),
                    },
                )
            self._store_issued(transaction, issued, now_ms)
            return True

        with _issued_exists():
            return bool(rotate(self._db.transaction()))

    def revoke_grant(self, grant_id: str) -> int:
        if not grant_id:
            return 0
        query = self._db.collection(base.TOKENS).where(filter=firestore.FieldFilter("grantId", "==", grant_id))
        revoked = 0
        while True:
            refs = [snap.reference for snap in query.limit(base.BATCH_LIMIT).stream()]
            if not refs:
                return revoked
            batch = self._db.batch()
            for ref in refs:
                batch.delete(ref)
            batch.commit()
            revoked += len(refs)
