"""The successor of a rotated refresh token, sealed so that only the refresh token itself opens it.

Inside the grace window a repeated refresh must return the same tokens as the first (Google sends concurrent
refreshes, and two answers would fork the grant into two chains). The store keeps only hashes, so the successor is
kept encrypted (AES-256-GCM) under a key derived from the presented refresh token: whoever holds that token gets
its successor again, and someone who reads the store (which holds the token's SHA-256, not the token) cannot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from functions.core import tokens

_KEY_PURPOSE = b"functions.linking.successors: refresh successor key"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Successor:
    access_token: str
    refresh_token: str
    access_expires_at_ms: int
    scope: str


def _key(refresh_token: str) -> bytes:
    # HMAC keyed with the token: independent of the SHA-256 the store keeps.
    return hmac.new(refresh_token.encode(), _KEY_PURPOSE, hashlib.sha256).digest()


def seal(refresh_token: str, successor: Successor) -> str:
    plain = json.dumps(
        {
            "access": successor.access_token,
            "refresh": successor.refresh_token,
            "accessExpires": successor.access_expires_at_ms,
            "scope": successor.scope,
        }
    ).encode()
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(_key(refresh_token)).encrypt(nonce, plain, _associated(refresh_token))
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(refresh_token: str, sealed: str) -> Successor | None:
    """The successor, or None if `sealed` was not sealed for this token (or was altered)."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        plain = AESGCM(_key(refresh_token)).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _associated(refresh_token))
        data = json.loads(plain)
        return Successor(str(data["access"]), str(data["refresh"]), int(data["accessExpires"]), str(data["scope"]))
    except (InvalidTag, ValueError, KeyError, TypeError, binascii.Error):
        return None


def _associated(refresh_token: str) -> bytes:
    """Binds the ciphertext to the token's document: moved to another token's, it does not open."""
    return tokens.hash_token(refresh_token).encode()
