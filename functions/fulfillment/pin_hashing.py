"""PIN hashing with argon2id (argon2-cffi's defaults: RFC 9106's low-memory profile, 64 MiB, 3 passes).

argon2 is imported when the first PIN is hashed or checked, never when the fulfillment starts.
"""

from __future__ import annotations

from typing import Any


class Argon2PinHasher:
    def __init__(self) -> None:
        from argon2 import PasswordHasher

        self._hasher: Any = PasswordHasher()

    def hash(self, pin: str) -> str:
        return str(self._hasher.hash(pin))

    def verify(self, pin_hash: str, pin: str) -> bool:
        from argon2 import exceptions

        try:
            return bool(self._hasher.verify(pin_hash, pin))
        except (exceptions.VerificationError, exceptions.InvalidHashError):
            return False
