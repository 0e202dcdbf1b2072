"""Firestore storage for account linking: OAuth clients, sign-in accounts, sign-in throttling and sessions.

Layout (besides the fulfillment's users/, and the grants in functions/linking/grant_store.py):
    oauthClients/{clientId}          name, secretHash (SHA-256), redirectUris, scopes, grantTypes, createdAt
    accounts/{sha256(e-mail)}        email, agentUserId, passwordHash (argon2id), createdAt
    signInAttempts/{scope-key-window}  count (atomic increments), scope, accountKey (the account's counters),
                                     expiresAt (TTL): the window's end (functions.linking.throttling)
    tokens/{sha256(session secret)}  kind "session", agentUserId, binding, createdAt, expiresAt (TTL): a sign-in
                                     session, in the token store like every other credential of account linking

`expiresAt` is meant for Firestore TTL policies, which delete expired documents.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from functions.linking import model as linking
from functions.linking import passwords
from functions.linking.model import Account, OAuthClient, SignInSession, account_key, normalize_email
from functions.linking.throttling import Counter
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

    def all_accounts(self) -> list[tuple[Account, int]]:
        """Every account with when it was made (ms), in the order of their e-mail addresses."""
        found = []
        for snap in self._db.collection(ACCOUNTS).order_by("email").stream():
            data = snap.to_dict() or {}
            account = Account(str(data["agentUserId"]), str(data.get("email", "")))
            found.append((account, base.to_ms(data.get("createdAt"))))
        return found

    def remove(self, email: str) -> Account | None:
        """Deletes the account; the account it was, or None if there was none."""
        ref = self._ref(email)

        @firestore.transactional
        def remove(transaction: Any) -> Account | None:
            snap = ref.get(transaction=transaction)
            if not snap.exists:
                return None
            data = snap.to_dict() or {}
            transaction.delete(ref)
            return Account(str(data["agentUserId"]), str(data.get("email", "")))

        result: Account | None = remove(self._db.transaction())
        return result


# Sign-in throttling


class FirestoreAttemptCounters:
    """Counters updated with Firestore's atomic increment: one write, no transaction, so concurrent sign-ins on one
    account never contend (the increment's result comes back with the write)."""

    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or base.client()

    def _ref(self, counter: Counter) -> Any:
        return self._db.collection(SIGN_IN_ATTEMPTS).document(counter.document_id)

    def add(self, counter: Counter, delta: int) -> int:
        document: dict[str, Any] = {
            "count": firestore.Increment(delta),
            "scope": counter.scope,
            "expiresAt": base.to_datetime(counter.window_end_ms),
        }
        if counter.account_key is not None:
            document["accountKey"] = counter.account_key
        written = self._ref(counter).set(document, merge=True)
        return int(written.transform_results[0].integer_value)

    def delete(self, counter: Counter) -> None:
        self._ref(counter).delete()

    def clear_account(self, account_key: str) -> int:
        query = self._db.collection(SIGN_IN_ATTEMPTS).where(
            filter=firestore.FieldFilter("accountKey", "==", account_key)
        )
        return base.delete_all(self._db, query)


# Sign-in sessions


class FirestoreSignInSessions:
    def __init__(self, db: firestore.Client | None = None) -> None:
        self._db = db or base.client()

    def _ref(self, session_hash: str) -> Any:
        return self._db.collection(base.TOKENS).document(session_hash)

    def start(self, session: SignInSession, now_ms: int) -> None:
        document = {
            "kind": linking.SIGN_IN_SESSION,
            "agentUserId": session.agent_user_id,
            "binding": session.binding,
            "createdAt": base.to_datetime(now_ms),
            "expiresAt": base.to_datetime(session.expires_at_ms),
        }
        try:
            self._ref(session.session_hash).create(document)
        except google_errors.AlreadyExists as exists:
            raise AlreadyExists("session exists") from exists

    def get(self, session_hash: str) -> SignInSession | None:
        return _session(session_hash, self._ref(session_hash).get())

    def consume(self, session_hash: str) -> SignInSession | None:
        ref = self._ref(session_hash)

        @firestore.transactional
        def consume(transaction: Any) -> SignInSession | None:
            found = _session(session_hash, ref.get(transaction=transaction))
            if found is not None:
                transaction.delete(ref)
            return found

        # Lost to a concurrent consent with this session that consumed it: it is gone (None) for this one.
        found: SignInSession | None = base.run_transaction(
            self._db, consume, lambda: self.get(session_hash) is None, None
        )
        return found


def _session(session_hash: str, snap: Any) -> SignInSession | None:
    data = (snap.to_dict() or {}) if snap.exists else {}
    if data.get("kind") != linking.SIGN_IN_SESSION:
        return None  # absent, or some other credential's hash
    return SignInSession(
        session_hash, str(data.get("agentUserId", "")), str(data.get("binding", "")), base.to_ms(data.get("expiresAt"))
    )
