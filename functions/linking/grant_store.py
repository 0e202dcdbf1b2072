"""Firestore storage of grants: codes, access and refresh tokens, and one record per grant, in the token store.

Layout (the token store the fulfillment reads, functions/platform/firestore.py):
    tokens/{sha256(token)}   the fulfillment's token fields (kind, agentUserId, clientId, expiresAt (TTL), revoked,
                             createdAt) plus grantId, scope; for codes redirectUri, codeChallenge,
                             codeChallengeMethod, usedAt; for rotated refresh tokens rotatedAt and successor (sealed)
    tokens/{grant-ID}        kind "grant", grantId, agentUserId, clientId, scope, createdAt, lastUsedAt, expiresAt:
                             the grant's record, expiring with its newest refresh token

Everything of one grant carries its grantId, so one query finds what to revoke; the records answer "which links
does this user have" (`users show`) and "is the user still linked" (the fulfillment's DISCONNECT) in one query.
Tokens issued before records existed have none: their grant gets one at its next refresh.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from functions.core import tokens
from functions.linking import model as linking
from functions.linking.model import Grant, GrantToken, code_redeemable, grant_record_id, rotated, touched
from functions.linking.store import AlreadyExists
from functions.platform import firestore as base


def grant_document(token: GrantToken, now_ms: int) -> dict[str, Any]:
    document = base.token_document(token.record, now_ms)
    document.update(grantId=token.grant_id, scope=token.scope)
    optional = {
        "redirectUri": token.redirect_uri,
        "codeChallenge": token.code_challenge,
        "codeChallengeMethod": token.code_challenge_method,
        "usedAt": base.to_datetime(token.used_at_ms) if token.used_at_ms is not None else None,
        "rotatedAt": base.to_datetime(token.rotated_at_ms) if token.rotated_at_ms is not None else None,
        "successor": token.successor,
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
        successor=data.get("successor"),
    )


def record_document(grant: Grant) -> dict[str, Any]:
    return {
        "kind": linking.GRANT_RECORD,
        "grantId": grant.grant_id,
        "agentUserId": grant.agent_user_id,
        "clientId": grant.client_id,
        "scope": grant.scope,
        "createdAt": base.to_datetime(grant.created_at_ms),
        "lastUsedAt": base.to_datetime(grant.last_used_at_ms),
        "expiresAt": base.to_datetime(grant.expires_at_ms),
    }


def record_from_document(data: dict[str, Any]) -> Grant:
    return Grant(
        grant_id=str(data.get("grantId", "")),
        agent_user_id=str(data.get("agentUserId", "")),
        client_id=data.get("clientId"),
        scope=str(data.get("scope", "")),
        created_at_ms=base.to_ms(data.get("createdAt")),
        last_used_at_ms=base.to_ms(data.get("lastUsedAt")),
        expires_at_ms=base.to_ms(data.get("expiresAt")),
    )


@contextlib.contextmanager
def _issued_exists() -> Iterator[None]:
    """A transaction creating a token whose hash is stored already fails as a whole: our AlreadyExists, not the
    SDK's, as from every store of this feature."""
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
        data = (snap.to_dict() or {}) if snap.exists else None
        if data is None or data.get("kind") not in tokens.KINDS:
            return None  # absent, or a grant's record or a session under that name
        return grant_from_document(token_hash, data)

    def add(self, token: GrantToken, now_ms: int) -> None:
        try:
            self._ref(token.record.token_hash).create(grant_document(token, now_ms))
        except google_errors.AlreadyExists as exists:
            raise AlreadyExists(f"token {token.record.token_hash[:12]}... exists") from exists

    def _store_issued(self, transaction: Any, issued: Sequence[GrantToken], now_ms: int) -> None:
        for token in issued:
            transaction.create(self._ref(token.record.token_hash), grant_document(token, now_ms))

    def redeem_code(self, code_hash: str, grant: Grant, issued: Sequence[GrantToken], now_ms: int) -> bool:
        """AlreadyExists (nothing written) if an issued token's hash is stored already."""
        ref = self._ref(code_hash)

        @firestore.transactional
        def redeem(transaction: Any) -> bool:
            snap = ref.get(transaction=transaction)
            if not snap.exists or not code_redeemable(grant_from_document(code_hash, snap.to_dict() or {}), now_ms):
                return False
            transaction.update(ref, {"usedAt": base.to_datetime(now_ms)})
            transaction.set(self._ref(grant_record_id(grant.grant_id)), record_document(grant))
            self._store_issued(transaction, issued, now_ms)
            return True

        with _issued_exists():  # lost to a concurrent redemption that used the code: this is the concurrent use
            used = partial(self._is_already, code_hash, lambda token: token.used_at_ms)
            return bool(base.run_transaction(self._db, redeem, used, False))

    def rotate_refresh(
        self, refresh_hash: str, successor: str, issued: Sequence[GrantToken], keep_until_ms: int, now_ms: int
    ) -> bool:
        """AlreadyExists (nothing written) if an issued token's hash is stored already."""
        ref = self._ref(refresh_hash)

        @firestore.transactional
        def rotate(transaction: Any) -> bool:
            snap = ref.get(transaction=transaction)
            if not snap.exists:
                return False
            current = grant_from_document(refresh_hash, snap.to_dict() or {})
            after = rotated(current, successor, keep_until_ms, now_ms)
            if after is None:
                return False
            record_ref = self._ref(grant_record_id(current.grant_id))
            record_snap = record_ref.get(transaction=transaction)
            record = record_from_document(record_snap.to_dict() or {}) if record_snap.exists else None
            newest = max((token.record.expires_at_ms for token in issued), default=now_ms)
            assert after.rotated_at_ms is not None
            transaction.update(
                ref,
                {
                    "expiresAt": base.to_datetime(after.record.expires_at_ms),
                    "rotatedAt": base.to_datetime(after.rotated_at_ms),
                    "successor": successor,
                },
            )
            if current.grant_id:
                transaction.set(record_ref, record_document(touched(record, current, now_ms, newest)))
            self._store_issued(transaction, issued, now_ms)
            return True

        with _issued_exists():  # lost to a concurrent refresh that rotated it: the caller answers its successor
            rotated_meanwhile = partial(self._is_already, refresh_hash, lambda token: token.rotated_at_ms)
            return bool(base.run_transaction(self._db, rotate, rotated_meanwhile, False))

    def _is_already(self, token_hash: str, mark: Callable[[GrantToken], int | None]) -> bool:
        """Whether the stored token bears the `mark` a winning transaction leaves (usedAt, rotatedAt)."""
        current = self.get(token_hash)
        return current is not None and mark(current) is not None

    def revoke_grant(self, grant_id: str) -> int:
        if not grant_id:  # tokens from outside a grant (no grantId) are not one grant
            return 0
        query = self._db.collection(base.TOKENS).where(filter=firestore.FieldFilter("grantId", "==", grant_id))
        return base.delete_all(self._db, query)

    def grants_of(self, agent_user_id: str) -> list[Grant]:
        query = (
            self._db.collection(base.TOKENS)
            .where(filter=firestore.FieldFilter("agentUserId", "==", agent_user_id))
            .where(filter=firestore.FieldFilter("kind", "==", linking.GRANT_RECORD))
        )
        found = [record_from_document(snap.to_dict() or {}) for snap in query.stream()]
        return sorted(found, key=lambda grant: (grant.created_at_ms, grant.grant_id))
