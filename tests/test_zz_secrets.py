"""After the whole suite: no raw token, code, client secret, password or PIN in any Firestore document or log line."""

from __future__ import annotations

import os

from tests import secret_watch


def test_the_watch_finds_a_planted_secret() -> None:
    planted = "pl4nted-s3cret-value"
    secret_watch.remember(planted)
    secret_watch.LOG_LINES.append('{"message": "oops pl4nted-s3cret-value"}')
    secret_watch.DOCUMENT_DUMPS.append('users/u {"pin": "9876"}')
    secret_watch.remember("9876")
    try:
        found = secret_watch.leaks()
        assert any("log" in leak for leak in found)
        assert any("firestore" in leak for leak in found)
    finally:
        secret_watch.SECRETS.difference_update({planted, "9876"})
        secret_watch.LOG_LINES.pop()
        secret_watch.DOCUMENT_DUMPS.pop()


def test_no_secret_was_stored_or_logged() -> None:
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        from functions.platform import firestore as adapter

        secret_watch.dump_firestore(adapter.client())
    assert secret_watch.SECRETS, "the watch saw no secret being hashed: it is not watching"
    leaks = secret_watch.leaks()
    assert leaks == [], "\n".join(leaks[:20])
