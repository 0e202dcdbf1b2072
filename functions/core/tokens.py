"""Bearer tokens: their format, hashing and validity. Only hashes are ever stored.

A token reads `<kind>.<agent user id, base64url>.<secret>`. The user id part is not secret (it is an opaque id);
it lets the fulfillment read the token record and the user's devices in one batched read. The token is valid
only if the stored record for its SHA-256 says so, and the record's user must match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Protocol

from functions.core.ids import id_problem

ACCESS = "at"
REFRESH = "rt"
CODE = "ac"
KINDS = (ACCESS, REFRESH, CODE)
ACCESS_TOKEN_TTL_S = 3600
MAX_TOKEN_LENGTH = 2048


def mint(kind: str, agent_user_id: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown token kind {kind!r}")
    user = base64.urlsafe_b64encode(agent_user_id.encode()).decode().rstrip("=")
    return f"{kind}.{user}.{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(kind, agent user id) named by a well-formed token, else None. Says nothing about validity."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] not in KINDS or not parts[2]:
        return None
    try:
        user = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if id_problem(user) is not None:
        return None
    return parts[0], user


@dataclass(frozen=True)
class TokenRecord:
    token_hash: str
    kind: str
    agent_user_id: str
    expires_at_ms: int
    revoked: bool = False
    client_id: str | None = None

    def grants(self, token: str, kind: str, agent_user_id: str, now_ms: int) -> bool:
        """Whether this record makes `token` a valid `kind` token of `agent_user_id` at `now_ms`."""
        return (
            hmac.compare_digest(self.token_hash, hash_token(token))
            and self.kind == kind
            and self.agent_user_id == agent_user_id
            and not self.revoked
            and now_ms < self.expires_at_ms
        )


def issue(
    store: TokenSaver, kind: str, agent_user_id: str, ttl_s: int, now_ms: int, client_id: str | None = None
) -> str:
    """Mints a token, stores only its hash with its expiry, and returns the token (shown once, never stored)."""
    token = mint(kind, agent_user_id)
    store.save(TokenRecord(hash_token(token), kind, agent_user_id, now_ms + ttl_s * 1000, client_id=client_id))
    return token


class TokenSaver(Protocol):
    def save(self, record: TokenRecord) -> None: ...
