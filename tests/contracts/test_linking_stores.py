"""Account-linking stores contract (the ports in functions/linking/model.py): tests/fakes/memory_linking.py against
functions/linking/store.py, per port: ClientRegistry, UserDirectory (with the `add` and `find` the CLI and the tests
use), SignInThrottle, GrantStore (and the fake's `disconnect`, which stands for the fulfillment's DISCONNECT), and
LinkMarker (the fulfillment store's `mark_linked` on Firestore)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from functions.core import tokens
from functions.core.tokens import TokenRecord
from functions.linking import model as linking
from functions.linking.model import ClientRegistry, GrantStore, GrantToken, LinkMarker, OAuthClient, SignInThrottle
from functions.linking.store import AlreadyExists
from tests.contracts.conftest import MEMORY
from tests.fakes.memory_linking import MemoryClients, MemoryGrants, MemoryLinks, MemoryThrottle, MemoryUsers

NOW = 1_800_000_000_123
# A hash no token has (not through tokens.hash_token: the secret watch would take its input for a secret).
UNKNOWN_HASH = hashlib.sha256(b"no token hashes to this").hexdigest()
REDIRECT = "https://oauth-redirect.googleusercontent.com/r/demo-project"
MAX_ATTEMPTS = 3
WINDOW_S = 60
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def quick_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters: these cases are about storage, not hashing cost."""
    from argon2 import PasswordHasher

    from functions.linking import passwords

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


# ClientRegistry


@dataclass
class Clients:
    registry: ClientRegistry
    add: Callable[[OAuthClient], None]


@pytest.fixture
def clients(backend: str, db: Any) -> Clients:
    if backend == MEMORY:
        fake = MemoryClients()
        return Clients(fake, lambda client: fake.clients.__setitem__(client.client_id, client))
    from functions.linking.store import FirestoreClientRegistry

    registry = FirestoreClientRegistry(db)
    return Clients(registry, registry.add)


@pytest.mark.parametrize(
    "client",
    [
        OAuthClient("google", "Google", linking.hash_client_secret("s" * 43), (REDIRECT,)),
        OAuthClient(
            "tester",
            "Tester",
            "f" * 64,
            (REDIRECT, "http://localhost:8080/cb"),
            ("devices", "read"),
            ("refresh_token",),
        ),
    ],
    ids=["defaults", "scopes-and-one-grant-type"],
)
def test_a_client_reads_back_equal(clients: Clients, client: OAuthClient) -> None:
    clients.add(client)
    assert clients.registry.get(client.client_id) == client


def test_an_unknown_client_is_none(clients: Clients) -> None:
    clients.add(OAuthClient("google", "Google", "f" * 64, (REDIRECT,)))
    assert clients.registry.get("Google") is None, "client ids are case-sensitive"


# UserDirectory


@pytest.fixture
def users(backend: str, db: Any) -> Any:
    if backend == MEMORY:
        return MemoryUsers()
    from functions.linking.store import FirestoreUserDirectory

    return FirestoreUserDirectory(db)


def test_a_new_account_has_a_fresh_opaque_id_and_the_normalized_e_mail(users: Any) -> None:
    ada = users.add("  Ada@Example.COM ", PASSWORD)
    bob = users.add("bob@example.com", PASSWORD)
    assert ada.email == "ada@example.com"
    assert len(ada.agent_user_id) == 32
    assert ada.agent_user_id != bob.agent_user_id


def test_an_account_is_found_by_e_mail_in_any_case_and_by_its_id(users: Any) -> None:
    ada = users.add("ada@example.com", PASSWORD)
    assert users.find("ADA@example.com ") == ada
    assert users.get(ada.agent_user_id) == ada
    assert users.find("bob@example.com") is None
    assert users.get("0" * 32) is None


def test_the_right_password_signs_in_and_nothing_else_does(users: Any) -> None:
    ada = users.add("ada@example.com", PASSWORD)
    assert users.authenticate("Ada@Example.com", PASSWORD) == ada
    assert users.authenticate("ada@example.com", PASSWORD + "!") is None
    assert users.authenticate("bob@example.com", PASSWORD) is None


def test_a_second_account_for_one_e_mail_is_refused(users: Any) -> None:
    ada = users.add("ada@example.com", PASSWORD)
    with pytest.raises(AlreadyExists):
        users.add("ADA@example.com", "another password")
    assert users.authenticate("ada@example.com", PASSWORD) == ada, "the first account is left as it was"
    assert users.find("ada@example.com") == ada


# SignInThrottle


@pytest.fixture
def throttle(backend: str, db: Any) -> SignInThrottle:
    if backend == MEMORY:
        return MemoryThrottle(max_attempts=MAX_ATTEMPTS, window_s=WINDOW_S)
    from functions.linking.store import FirestoreSignInThrottle

    return FirestoreSignInThrottle(db, max_attempts=MAX_ATTEMPTS, window_s=WINDOW_S)


def test_attempts_beyond_the_limit_wait_for_the_end_of_the_window(throttle: SignInThrottle) -> None:
    assert [throttle.attempt("key", NOW + step) for step in range(MAX_ATTEMPTS)] == [0] * MAX_ATTEMPTS
    assert throttle.attempt("key", NOW + 1_000) == WINDOW_S * 1000 - 1_000
    assert throttle.attempt("key", NOW + 2_000) == WINDOW_S * 1000 - 2_000, "a refused attempt does not extend it"
    assert throttle.attempt("other-key", NOW + 2_000) == 0, "accounts are throttled apart"


def test_a_new_window_starts_when_the_old_one_ends(throttle: SignInThrottle) -> None:
    for step in range(MAX_ATTEMPTS + 1):
        throttle.attempt("key", NOW + step)
    assert throttle.attempt("key", NOW + WINDOW_S * 1000 - 1) == 1
    assert throttle.attempt("key", NOW + WINDOW_S * 1000) == 0
    later = NOW + WINDOW_S * 1000
    assert [throttle.attempt("key", later + 1) for _ in range(MAX_ATTEMPTS - 1)] == [0] * (MAX_ATTEMPTS - 1)
    assert throttle.attempt("key", later + 2) == WINDOW_S * 1000 - 2


def test_a_reset_forgets_the_attempts(throttle: SignInThrottle) -> None:
    for step in range(MAX_ATTEMPTS + 1):
        throttle.attempt("key", NOW + step)
    throttle.reset("key")
    throttle.reset("never-seen")
    assert throttle.attempt("key", NOW + 10) == 0


# GrantStore


@dataclass
class Grants:
    store: GrantStore
    disconnect: Callable[[str], int]  # every token of a user goes (the fulfillment's DISCONNECT)


@pytest.fixture
def grants(backend: str, db: Any) -> Grants:
    if backend == MEMORY:
        fake = MemoryGrants()
        return Grants(fake, fake.disconnect)
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.linking.store import FirestoreGrantStore

    fulfillment = FirestoreFulfillmentStore(db)
    return Grants(FirestoreGrantStore(db), lambda agent_user_id: fulfillment.disconnect(agent_user_id, NOW))


def grant_token(kind: str, grant_id: str = "grant-1", user: str = "alice", ttl_ms: int = 600_000) -> GrantToken:
    record = TokenRecord(tokens.hash_token(tokens.mint(kind, user)), kind, user, NOW + ttl_ms, client_id="google")
    return GrantToken(record, grant_id, scope="devices")


def code(**changes: Any) -> GrantToken:
    found = replace(
        grant_token(tokens.CODE),
        redirect_uri=REDIRECT,
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
    )
    return replace(found, **changes)


def issued(grant_id: str = "grant-1") -> list[GrantToken]:
    return [grant_token(tokens.ACCESS, grant_id, ttl_ms=3_600_000), grant_token(tokens.REFRESH, grant_id)]


def stored(grants: Grants, token: GrantToken) -> GrantToken | None:
    return grants.store.get(token.record.token_hash)


@pytest.mark.parametrize(
    "token",
    [
        code(),
        replace(grant_token(tokens.REFRESH), rotated_at_ms=NOW - 5, scope=""),
        code(used_at_ms=NOW - 1, code_challenge=None, code_challenge_method=None, redirect_uri=None),
        replace(grant_token(tokens.ACCESS), record=replace(grant_token(tokens.ACCESS).record, revoked=True)),
    ],
    ids=["code", "rotated-refresh", "used-code-without-pkce", "revoked-access"],
)
def test_a_grant_token_reads_back_equal(grants: Grants, token: GrantToken) -> None:
    grants.store.add(token, NOW)
    assert stored(grants, token) == token


def test_an_unknown_token_hash_is_none(grants: Grants) -> None:
    assert grants.store.get(UNKNOWN_HASH) is None


def test_adding_a_token_that_exists_fails_and_keeps_the_first(grants: Grants) -> None:
    first = code()
    grants.store.add(first, NOW)
    with pytest.raises(AlreadyExists):
        grants.store.add(replace(first, grant_id="grant-2"), NOW)
    assert stored(grants, first) == first


def test_redeeming_a_code_uses_it_up_and_stores_the_tokens(grants: Grants) -> None:
    first = code()
    grants.store.add(first, NOW)
    tokens_issued = issued()

    assert grants.store.redeem_code(first.record.token_hash, tokens_issued, NOW + 10)

    assert stored(grants, first) == replace(first, used_at_ms=NOW + 10)
    assert [stored(grants, token) for token in tokens_issued] == tokens_issued


def test_a_used_code_cannot_be_redeemed_again_and_nothing_is_written(grants: Grants) -> None:
    first = code()
    grants.store.add(first, NOW)
    assert grants.store.redeem_code(first.record.token_hash, issued(), NOW + 10)
    again = issued()
    assert not grants.store.redeem_code(first.record.token_hash, again, NOW + 20)
    assert stored(grants, first) == replace(first, used_at_ms=NOW + 10)
    assert [stored(grants, token) for token in again] == [None, None]


@pytest.mark.parametrize(
    ("token", "at"),
    [
        (code(), NOW + 600_000),  # expired (exactly at its end)
        (code(record=replace(code().record, revoked=True)), NOW),
        (grant_token(tokens.REFRESH), NOW),  # not a code
    ],
    ids=["expired", "revoked", "not-a-code"],
)
def test_only_a_live_unused_code_is_redeemed(grants: Grants, token: GrantToken, at: int) -> None:
    grants.store.add(token, NOW)
    tokens_issued = issued()
    assert not grants.store.redeem_code(token.record.token_hash, tokens_issued, at)
    assert stored(grants, token) == token
    assert [stored(grants, issued_token) for issued_token in tokens_issued] == [None, None]


def test_redeeming_an_unknown_code_fails(grants: Grants) -> None:
    assert not grants.store.redeem_code(UNKNOWN_HASH, issued(), NOW)


def test_a_redemption_issuing_an_existing_token_fails_as_a_whole(grants: Grants) -> None:
    first = code()
    grants.store.add(first, NOW)
    taken = grant_token(tokens.ACCESS, "grant-0")
    grants.store.add(taken, NOW)
    fresh = grant_token(tokens.REFRESH)
    with pytest.raises(AlreadyExists):
        grants.store.redeem_code(first.record.token_hash, [fresh, replace(taken, grant_id="grant-1")], NOW)
    assert stored(grants, first) == first, "the code is not used up"
    assert stored(grants, fresh) is None
    assert stored(grants, taken) == taken


def test_of_concurrent_redemptions_of_one_code_exactly_one_wins(grants: Grants) -> None:
    """Google may send a code twice at once; on Firestore the loser's transaction retries (about a second)."""
    first = code()
    grants.store.add(first, NOW)
    results: list[bool] = []
    start = threading.Barrier(2)

    def redeem() -> None:
        start.wait()
        results.append(grants.store.redeem_code(first.record.token_hash, issued(), NOW + 1))

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]


def test_a_first_rotation_shortens_the_refresh_token_to_the_grace_window(grants: Grants) -> None:
    refresh = grant_token(tokens.REFRESH)
    grants.store.add(refresh, NOW)
    tokens_issued = issued()

    assert grants.store.rotate_refresh(refresh.record.token_hash, tokens_issued, NOW + 60_000, NOW + 5)

    rotated = replace(refresh, record=replace(refresh.record, expires_at_ms=NOW + 60_000), rotated_at_ms=NOW + 5)
    assert stored(grants, refresh) == rotated
    assert [stored(grants, token) for token in tokens_issued] == tokens_issued


def test_later_rotations_in_the_grace_window_leave_the_refresh_token_as_it_is(grants: Grants) -> None:
    refresh = grant_token(tokens.REFRESH)
    grants.store.add(refresh, NOW)
    assert grants.store.rotate_refresh(refresh.record.token_hash, issued(), NOW + 60_000, NOW + 5)
    first_rotation = stored(grants, refresh)

    second = issued()
    assert grants.store.rotate_refresh(refresh.record.token_hash, second, NOW + 90_000, NOW + 30_000)

    assert stored(grants, refresh) == first_rotation
    assert [stored(grants, token) for token in second] == second


def test_a_rotation_never_lengthens_a_refresh_tokens_life(grants: Grants) -> None:
    refresh = grant_token(tokens.REFRESH, ttl_ms=10_000)
    grants.store.add(refresh, NOW)
    assert grants.store.rotate_refresh(refresh.record.token_hash, issued(), NOW + 60_000, NOW + 5)
    found = stored(grants, refresh)
    assert found is not None
    assert found.record.expires_at_ms == NOW + 10_000


@pytest.mark.parametrize(
    ("token", "at"),
    [
        (grant_token(tokens.REFRESH), NOW + 600_000),  # expired
        (replace(grant_token(tokens.REFRESH), record=replace(grant_token(tokens.REFRESH).record, revoked=True)), NOW),
        (grant_token(tokens.ACCESS), NOW),  # not a refresh token
    ],
    ids=["expired", "revoked", "not-a-refresh-token"],
)
def test_only_a_working_refresh_token_rotates(grants: Grants, token: GrantToken, at: int) -> None:
    grants.store.add(token, NOW)
    tokens_issued = issued()
    assert not grants.store.rotate_refresh(token.record.token_hash, tokens_issued, at + 60_000, at)
    assert stored(grants, token) == token
    assert [stored(grants, issued_token) for issued_token in tokens_issued] == [None, None]


def test_a_rotation_issuing_an_existing_token_fails_as_a_whole(grants: Grants) -> None:
    refresh = grant_token(tokens.REFRESH)
    grants.store.add(refresh, NOW)
    taken = grant_token(tokens.ACCESS, "grant-0")
    grants.store.add(taken, NOW)
    fresh = grant_token(tokens.REFRESH)
    with pytest.raises(AlreadyExists):
        grants.store.rotate_refresh(
            refresh.record.token_hash, [fresh, replace(taken, grant_id="grant-1")], NOW + 60_000, NOW
        )
    assert stored(grants, refresh) == refresh, "the refresh token is not rotated"
    assert stored(grants, fresh) is None
    assert stored(grants, taken) == taken


def test_rotating_an_unknown_refresh_token_fails(grants: Grants) -> None:
    assert not grants.store.rotate_refresh(UNKNOWN_HASH, issued(), NOW + 60_000, NOW)


def test_revoking_a_grant_deletes_its_codes_and_tokens_only(grants: Grants) -> None:
    mine = [code(), *issued()]
    theirs = issued("grant-2")
    for token in [*mine, *theirs]:
        grants.store.add(token, NOW)

    assert grants.store.revoke_grant("grant-1") == 3

    assert [stored(grants, token) for token in mine] == [None, None, None]
    assert [stored(grants, token) for token in theirs] == theirs
    assert grants.store.revoke_grant("grant-1") == 0


def test_revoking_the_empty_grant_id_deletes_nothing(grants: Grants) -> None:
    outside = grant_token(tokens.ACCESS, grant_id="")  # e.g. a token issued by an operator, outside any grant
    grants.store.add(outside, NOW)
    assert grants.store.revoke_grant("") == 0
    assert stored(grants, outside) == outside


def test_a_disconnect_deletes_every_token_of_the_user_whatever_the_grant(grants: Grants) -> None:
    mine = [code(), *issued(), *issued("grant-2")]
    theirs = grant_token(tokens.ACCESS, "grant-3", user="bob")
    for token in [*mine, theirs]:
        grants.store.add(token, NOW)
    assert grants.disconnect("alice") == 5
    assert [stored(grants, token) for token in mine] == [None] * 5
    assert stored(grants, theirs) == theirs


# LinkMarker


@dataclass
class Links:
    marker: LinkMarker
    linked_at: Callable[[str], int | None]


@pytest.fixture
def links(backend: str, db: Any) -> Links:
    if backend == MEMORY:
        fake = MemoryLinks()
        return Links(fake, fake.linked.get)
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.platform.firestore import to_ms

    def linked_at(agent_user_id: str) -> int | None:
        data = db.collection("users").document(agent_user_id).get().to_dict() or {}
        return to_ms(data["linkedAt"]) if data.get("linked") is True else None

    return Links(FirestoreFulfillmentStore(db), linked_at)


def test_marking_a_user_linked_records_when(links: Links) -> None:
    assert links.linked_at("alice") is None
    links.marker.mark_linked("alice", NOW)
    links.marker.mark_linked("alice", NOW + 9)
    assert links.linked_at("alice") == NOW + 9
    assert links.linked_at("bob") is None
