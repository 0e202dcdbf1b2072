"""Watches the whole test session for secrets at rest or in logs.

Every value the code hashes is a secret: tokens and codes (SHA-256 through functions.core.tokens.hash_token),
passwords and PINs (argon2). The watch records each one as it is hashed, keeps every log record of the session and a
dump of every Firestore document before the emulator is emptied, and `leaks()` says where a raw secret shows up.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from functions.platform.logs import JsonLineFormatter

SECRETS: set[str] = set()
LOG_LINES: list[str] = []
DOCUMENT_DUMPS: list[str] = []
_lock = threading.Lock()
# Raw tokens of ours have a recognisable shape, whether or not the watch saw them being hashed.
TOKEN_SHAPE = re.compile(r"\b(?:at|rt|ac)\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{40,}")


def remember(secret: str) -> None:
    if secret:
        with _lock:
            SECRETS.add(secret)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonLineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            line = str(record.msg)
        with _lock:
            LOG_LINES.append(line)


def _wrap(owner: Any, name: str, secret_of: Callable[..., str | None]) -> None:
    original = getattr(owner, name)

    def watched(*args: Any, **kwargs: Any) -> Any:
        secret = secret_of(*args, **kwargs)
        if isinstance(secret, str):
            remember(secret)
        return original(*args, **kwargs)

    setattr(owner, name, watched)


def start() -> None:
    from functions.core import tokens

    _wrap(tokens, "hash_token", lambda token, *a, **k: token)
    try:
        import argon2

        _wrap(argon2.PasswordHasher, "hash", lambda self, password, *a, **k: _text(password))
        _wrap(argon2.PasswordHasher, "verify", lambda self, hashed, password, *a, **k: _text(password))
    except ImportError:
        pass
    logging.getLogger().addHandler(_Capture())


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def dump_firestore(db: Any) -> None:
    """Keeps a JSON dump of every document (all collections, recursively) before the emulator is emptied."""

    def walk(collections: Any) -> None:
        for collection in collections:
            for snapshot in collection.stream():
                DOCUMENT_DUMPS.append(f"{snapshot.reference.path} {json.dumps(snapshot.to_dict(), default=str)}")
                walk(snapshot.reference.collections())

    walk(db.collections())


# Secrets made only of these characters (tokens, codes, client secrets, most passwords) are found by looking up
# every run of such characters in a set: the suite hashes thousands of tokens and logs many thousand lines, too
# many for a search per secret and line. Other secrets (a password with a space, say) are few and searched for.
WORD = re.compile(r"[A-Za-z0-9._~+/=-]+")
WORD_SECRET = re.compile(r"[A-Za-z0-9._~+/=-]{8,}")


def _pattern(secret: str) -> re.Pattern[str]:
    # Short secrets (a PIN) only count as a whole word, so that digits inside timestamps are no false alarm.
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])")


def leaks() -> list[str]:
    found = []
    with _lock:
        texts = [("log", line) for line in LOG_LINES] + [("firestore", dump) for dump in DOCUMENT_DUMPS]
        secrets = sorted(SECRETS)
    words = {secret for secret in secrets if WORD_SECRET.fullmatch(secret)}
    patterns = [(secret, _pattern(secret)) for secret in secrets if secret not in words]
    for where, text in sorted(set(texts)):
        shaped = TOKEN_SHAPE.search(text)
        if shaped:
            found.append(f"{where}: a raw token {shaped.group(0)[:12]}... in {text[:160]}")
        runs = set(WORD.findall(text))
        # A secret may also sit inside a longer run (after a "Bearer=" or a path prefix): its pieces around
        # separators are runs of their own, so look at the run's substrings split the same way.
        for run in list(runs):
            runs.update(part for part in re.split(r"[/=+]", run) if part)
        for secret in words & runs:
            found.append(f"{where}: a secret ({len(secret)} characters, starts {secret[:3]!r}) in {text[:160]}")
        for secret, pattern in patterns:
            if pattern.search(text):
                found.append(f"{where}: a secret ({len(secret)} characters, starts {secret[:3]!r}) in {text[:160]}")
    return found
