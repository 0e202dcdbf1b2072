"""Builds the account-linking service from settings and adapters (once per instance), and its session key.

The session key (signing the pages' CSRF tokens and device cookies) is read by `authorize` only; `token` never
calls `session_key` and is deployed without the secret."""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from typing import TYPE_CHECKING

from functions.linking import model, service
from functions.platform import config

if TYPE_CHECKING:
    from google.cloud import firestore

_service: service.AccountLinking | None = None
_lock = threading.Lock()
MIN_SESSION_KEY_LENGTH = 32


def user_directory(spec: str, db: firestore.Client | None = None) -> model.UserDirectory:
    """The embedded Firestore directory, or the maker's own: `spec` names a factory as `package.module:callable`."""
    if not spec:
        from functions.linking import store

        return store.FirestoreUserDirectory(db)
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name.isidentifier():
        raise ValueError(f"ACCOUNT_LINKING_USER_DIRECTORY must read package.module:factory, not {spec!r}")
    factory = getattr(importlib.import_module(module_name), factory_name)
    directory: model.UserDirectory = factory()
    return directory


def default_service() -> service.AccountLinking:
    """The process-wide service on Firestore (the functions keep it across invocations)."""
    from functions.fulfillment import FirestoreFulfillmentStore
    from functions.linking import grant_store, store
    from functions.platform.firestore import client as firestore_client

    global _service
    with _lock:
        if _service is None:
            db = firestore_client()
            _service = service.AccountLinking(
                clients=store.FirestoreClientRegistry(db),
                users=user_directory(config.account_linking_user_directory(), db),
                attempts=store.FirestoreAttemptCounters(db),
                sessions=store.FirestoreSignInSessions(db),
                grants=grant_store.FirestoreGrantStore(db),
                links=FirestoreFulfillmentStore(db),
            )
        return _service


class SessionKeyMissing(RuntimeError):
    """Production without ACCOUNT_LINKING_SESSION_KEY: the sign-in pages refuse to run rather than sign weakly."""


def session_key() -> bytes:
    """The key that signs the sign-in pages' cookies and CSRF tokens: ACCOUNT_LINKING_SESSION_KEY (from Secret
    Manager in production). On the emulator, without it, a fixed key per project, since the data is not real."""
    configured = config.account_linking_session_key()
    if len(configured) >= MIN_SESSION_KEY_LENGTH:
        return configured.encode()
    if configured:
        raise SessionKeyMissing(f"ACCOUNT_LINKING_SESSION_KEY must have at least {MIN_SESSION_KEY_LENGTH} characters")
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return hashlib.sha256(f"emulator-only session key for {config.project_id()}".encode()).digest()
    raise SessionKeyMissing("ACCOUNT_LINKING_SESSION_KEY is not set")
