"""Password hashing with argon2id (argon2-cffi's defaults: RFC 9106's low-memory profile, 64 MiB, 3 passes).

argon2 is imported on first use only: the functions' cold start does not pay for it.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

_hasher: Any = None
_decoy_hash: str | None = None
_lock = threading.Lock()


def _password_hasher() -> Any:
    global _hasher
    with _lock:
        if _hasher is None:
            from argon2 import PasswordHasher

            _hasher = PasswordHasher()
        return _hasher


def hash_password(password: str) -> str:
    return str(_password_hasher().hash(password))


def verify_password(password_hash: str, password: str) -> bool:
    from argon2 import exceptions

    try:
        return bool(_password_hasher().verify(password_hash, password))
    except (exceptions.VerificationError, exceptions.InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's: it is replaced at the next sign-in."""
    return bool(_password_hasher().check_needs_rehash(password_hash))


def spend_verification_time(password: str) -> None:
    """Verifies against a throwaway hash, so an unknown e-mail takes as long to refuse as a wrong password."""
    global _decoy_hash
    if _decoy_hash is None:
        _decoy_hash = hash_password(secrets.token_urlsafe(24))
    verify_password(_decoy_hash, password)
