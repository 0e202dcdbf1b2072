"""Account-linking stores contract (the ports in functions/linking/model.py and throttling.py):
tests/fakes/memory_linking.py against functions/linking/store.py and grant_store.py, per port: ClientRegistry,
UserDirectory (with the `add`, `find`, `all_accounts`, `set_password` and `remove` the CLI and the tests use),
AttemptCounters, SignInSessions, GrantStore (and the fake's `disconnect`, which stands for the fulfillment's
DISCONNECT: functions/fulfillment/store.py on Firestore, reading what the grant store wrote), and LinkMarker (the
fulfillment store's `mark_linked` on Firestore)."""

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
from functions.linking import throttling
from functions.linking.model import (
    ClientRegistry,
    Grant,
    GrantStore,
    GrantToken,
    LinkMarker,
    OAuthClient,
    SignInSession,
    SignInSessions,
)
from functions.linking.store import AlreadyExists
from functions.linking.throttling import AttemptCounters, Limit
from tests.contracts.conftest import MEMORY
from tests.fakes.memory_linking import (
    MemoryAttemptCounters,
    MemoryClients,
    MemoryGrants,
    MemoryLinks,
    MemorySessions,
    MemoryUsers,
)

NOW = 1_800_000_000_123
# A hash no token has (not through tokens.hash_token: the secret watch would take its input for a secret).
UNKNOWN_HASH = hashlib.sha256(b"no token hashes to this").hexdigest()
REDIRECT = "https://oauth-redirect.googleusercontent.com/r/demo-project"
WINDOW = Limit(throttling.ACCOUNT, 3, 60)
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


def test_accounts_are_listed_by_e_mail_with_when_they_were_made(users: Any) -> None:
    bob = users.add("bob@example.com", PASSWORD)
    ada = users.add("ada@example.com", PASSWORD)
    listed = users.all_accounts()
    assert [account for account, _ in listed] == [ada, bob]
    assert listed[0][1] > listed[1][1], "made after bob"


def test_a_new_password_replaces_the_old_one(users: Any) -> None:
    ada = users.add("ada@example.com", PASSWORD)
    assert users.set_password("ADA@example.com", "a brand new password")
    assert users.authenticate("ada@example.com", PASSWORD) is None
    assert users.authenticate("ada@example.com", "a brand new password") == ada
    assert not users.set_password("bob@example.com", "a brand new password"), "no account, nothing made"
    assert users.find("bob@example.com") is None


def test_a_removed_account_is_gone_and_its_id_never_comes_back(users: Any) -> None:
    ada = users.add("ada@example.com", PASSWORD)
    assert users.remove("Ada@example.com") == ada
    assert users.remove("ada@example.com") is None
    assert users.find("ada@example.com") is None
    assert users.get(ada.agent_user_id) is None
    assert users.authenticate("ada@example.com", PASSWORD) is None
    again = users.add("ada@example.com", PASSWORD)
    assert again.agent_user_id != ada.agent_user_id


# AttemptCounters


@pytest.fixture
def counters(backend: str, db: Any) -> AttemptCounters:
    if backend == MEMORY:
        return MemoryAttemptCounters()
    from functions.linking.store import FirestoreAttemptCounters

    return FirestoreAttemptCounters(db)


def test_a_counter_counts_up_and_down_in_its_window(counters: AttemptCounters) -> None:
    counter = throttling.counter(WINDOW, "ada:203.0.113.66", NOW, "account-key-ada")
    assert [counters.add(counter, 1) for _ in range(4)] == [1, 2, 3, 4]
    assert counters.add(counter, -1) == 3
    later = throttling.counter(WINDOW, "ada:203.0.113.66", NOW + WINDOW.window_s * 1000, "account-key-ada")
    assert later.document_id != counter.document_id
    assert counters.add(later, 1) == 1, "a new window starts at 0"
    other = throttling.counter(WINDOW, "bob:203.0.113.66", NOW, "account-key-bob")
    assert counters.add(other, 1) == 1, "counters are apart"


def test_a_deleted_counter_starts_again(counters: AttemptCounters) -> None:
    counter = throttling.counter(WINDOW, "ada", NOW)
    counters.add(counter, 5)
    counters.delete(counter)
    counters.delete(counter)  # deleting what is gone is fine
    assert counters.add(counter, 1) == 1


def test_clearing_an_account_deletes_its_counters_in_every_window_only(counters: AttemptCounters) -> None:
    mine = [
        throttling.counter(WINDOW, "ada", NOW, "account-key-ada"),
        throttling.counter(WINDOW, "ada", NOW + 60_000, "account-key-ada"),
        throttling.counter(Limit(throttling.ACCOUNT_IP, 5, 60), "ada:1.2.3.4", NOW, "account-key-ada"),
    ]
    theirs = throttling.counter(WINDOW, "bob", NOW, "account-key-bob")
    ip = throttling.counter(Limit(throttling.IP, 30, 60), "1.2.3.4", NOW)
    for counter in [*mine, theirs, ip]:
        counters.add(counter, 2)
    assert counters.clear_account("account-key-ada") == 3
    assert [counters.add(counter, 1) for counter in mine] == [1, 1, 1]
    assert counters.add(theirs, 1) == 3
    assert counters.add(ip, 1) == 3, "an IP's counter belongs to no account"


def test_concurrent_counts_lose_none_and_never_fail(counters: AttemptCounters) -> None:
    """12 sign-ins at once on one account: atomic increments, no transaction to contend."""
    counter = throttling.counter(WINDOW, "ada", NOW, "account-key-ada")
    results: list[int] = []
    start = threading.Barrier(12)

    def count() -> None:
        start.wait()
        results.append(counters.add(counter, 1))

    threads = [threading.Thread(target=count) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(1, 13))


# SignInSessions


@pytest.fixture
def sessions(backend: str, db: Any) -> SignInSessions:
    if backend == MEMORY:
        return MemorySessions()
    from functions.linking.store import FirestoreSignInSessions

    return FirestoreSignInSessions(db)


def session(**changes: Any) -> SignInSession:
    found = SignInSession(hashlib.sha256(b"session one").hexdigest(), "alice", "b" * 64, NOW + 600_000)
    return replace(found, **changes)


def test_a_session_reads_back_equal_until_consumed(sessions: SignInSessions) -> None:
    first = session()
    sessions.start(first, NOW)
    assert sessions.get(first.session_hash) == first
    assert sessions.get(UNKNOWN_HASH) is None
    assert sessions.consume(first.session_hash) == first
    assert sessions.consume(first.session_hash) is None
    assert sessions.get(first.session_hash) is None


def test_starting_a_session_twice_fails(sessions: SignInSessions) -> None:
    first = session()
    sessions.start(first, NOW)
    with pytest.raises(AlreadyExists):
        sessions.start(replace(first, agent_user_id="bob"), NOW)
    assert sessions.get(first.session_hash) == first


def test_of_concurrent_consents_with_one_session_exactly_one_gets_it(sessions: SignInSessions) -> None:
    first = session()
    sessions.start(first, NOW)
    results: list[SignInSession | None] = []
    start = threading.Barrier(3)

    def consume() -> None:
        start.wait()
        results.append(sessions.consume(first.session_hash))

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result is not None for result in results) == [False, False, True]


# GrantStore


@dataclass
class Grants:
    store: GrantStore
    # The fulfillment's DISCONNECT: (agentUserId, token hash or None for every grant) -> documents revoked.
    disconnect: Callable[[str, str | None], int]
    linked: Callable[[str], bool]  # what users/{u}.linked says afterwards (never linked counts as linked here)


@pytest.fixture
def grants(backend: str, db: Any) -> Grants:
    if backend == MEMORY:
        fake = MemoryGrants()
        return Grants(
            fake,
            lambda user, token_hash: fake.disconnect(user, NOW, token_hash),
            lambda user: user not in fake.unlinked,
        )
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.linking.grant_store import FirestoreGrantStore

    fulfillment = FirestoreFulfillmentStore(db)

    def linked(agent_user_id: str) -> bool:
        return (db.collection("users").document(agent_user_id).get().to_dict() or {}).get("linked", True) is True

    return Grants(
        FirestoreGrantStore(db), lambda user, token_hash: fulfillment.disconnect(user, NOW, token_hash), linked
    )


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


def issued(grant_id: str = "grant-1", user: str = "alice") -> list[GrantToken]:
    return [grant_token(tokens.ACCESS, grant_id, user, ttl_ms=3_600_000), grant_token(tokens.REFRESH, grant_id, user)]


def record(grant_id: str = "grant-1", user: str = "alice", at: int = NOW) -> Grant:
    return Grant(grant_id, user, "google", "devices", at, at, at + 3_600_000)


def stored(grants: Grants, token: GrantToken) -> GrantToken | None:
    return grants.store.get(token.record.token_hash)


def link(grants: Grants, grant_id: str, user: str = "alice") -> list[GrantToken]:
    """A completed linking: the code redeemed, the grant's record and tokens stored."""
    first = replace(code(), record=replace(grant_token(tokens.CODE, grant_id, user).record), grant_id=grant_id)
    grants.store.add(first, NOW)
    tokens_issued = issued(grant_id, user)
    assert grants.store.redeem_code(first.record.token_hash, record(grant_id, user), tokens_issued, NOW)
    return tokens_issued


@pytest.mark.parametrize(
    "token",
    [
        code(),
        replace(grant_token(tokens.REFRESH), rotated_at_ms=NOW - 5, scope="", successor="c2VhbGVk"),
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


def test_a_grant_record_is_no_token(grants: Grants) -> None:
    link(grants, "grant-1")
    assert grants.store.get(linking.grant_record_id("grant-1")) is None


def test_adding_a_token_that_exists_fails_and_keeps_the_first(grants: Grants) -> None:
    first = code()
    grants.store.add(first, NOW)
    with pytest.raises(AlreadyExists):
        grants.store.add(replace(first, grant_id="grant-2"), NOW)
    assert stored(grants, first) == first


def test_redeeming_a_code_uses_it_up_and_stores_the_grant_and_its_tokens(grants: Grants) -> None:
    first = code()
    grants.store.add(first, NOW)
    tokens_issued = issued()

    assert grants.store.redeem_code(first.record.token_hash, record(at=NOW + 10), tokens_issued, NOW + 10)

    assert stored(grants, first) == replace(first, used_at_ms=NOW + 10)
    assert [stored(grants, token) for token in tokens_issued] == tokens_issued
    assert grants.store.grants_of("alice") == [record(at=NOW + 10)]


def test_a_used_code_cannot_be_redeemed_again_and_nothing_is_written(grants: Grants) -> None:
    first = code()
    grants.store.add(first, NOW)
    assert grants.store.redeem_code(first.record.token_hash, record(), issued(), NOW + 10)
    again = issued()
    assert not grants.store.redeem_code(first.record.token_hash, record("grant-9"), again, NOW + 20)
    assert stored(grants, first) == replace(first, used_at_ms=NOW + 10)
    assert [stored(grants, token) for token in again] == [None, None]
    assert [grant.grant_id for grant in grants.store.grants_of("alice")] == ["grant-1"]


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
    assert not grants.store.redeem_code(token.record.token_hash, record(), tokens_issued, at)
    assert stored(grants, token) == token
    assert [stored(grants, issued_token) for issued_token in tokens_issued] == [None, None]
    assert grants.store.grants_of("alice") == []


def test_redeeming_an_unknown_code_fails(grants: Grants) -> None:
    assert not grants.store.redeem_code(UNKNOWN_HASH, record(), issued(), NOW)


def test_a_redemption_issuing_an_existing_token_fails_as_a_whole(grants: Grants) -> None:
    first = code()
    grants.store.add(first, NOW)
    taken = grant_token(tokens.ACCESS, "grant-0")
    grants.store.add(taken, NOW)
    fresh = grant_token(tokens.REFRESH)
    with pytest.raises(AlreadyExists):
        grants.store.redeem_code(first.record.token_hash, record(), [fresh, replace(taken, grant_id="grant-1")], NOW)
    assert stored(grants, first) == first, "the code is not used up"
    assert stored(grants, fresh) is None
    assert stored(grants, taken) == taken
    assert grants.store.grants_of("alice") == []


def test_of_concurrent_redemptions_of_one_code_exactly_one_wins(grants: Grants) -> None:
    """Google may send a code twice at once; on Firestore the loser's transaction retries (about a second)."""
    first = code()
    grants.store.add(first, NOW)
    results: list[bool] = []
    start = threading.Barrier(2)

    def redeem() -> None:
        start.wait()
        results.append(grants.store.redeem_code(first.record.token_hash, record(), issued(), NOW + 1))

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]


def test_a_rotation_keeps_the_successor_and_remembers_the_token_for_reuse_detection(grants: Grants) -> None:
    [_, refresh] = link(grants, "grant-1")
    tokens_issued = issued()
    keep_until = NOW + 30 * 24 * 3_600_000

    assert grants.store.rotate_refresh(refresh.record.token_hash, "c2VhbGVk", tokens_issued, keep_until, NOW + 5)

    kept = replace(refresh.record, expires_at_ms=min(refresh.record.expires_at_ms, keep_until))
    assert stored(grants, refresh) == replace(refresh, record=kept, rotated_at_ms=NOW + 5, successor="c2VhbGVk")
    assert [stored(grants, token) for token in tokens_issued] == tokens_issued
    newest = max(token.record.expires_at_ms for token in tokens_issued)
    assert grants.store.grants_of("alice") == [replace(record(), last_used_at_ms=NOW + 5, expires_at_ms=newest)]


def test_a_rotated_token_does_not_rotate_again_and_nothing_is_written(grants: Grants) -> None:
    [_, refresh] = link(grants, "grant-1")
    assert grants.store.rotate_refresh(refresh.record.token_hash, "Zmlyc3Q=", issued(), NOW + 90_000, NOW + 5)
    first_rotation = stored(grants, refresh)
    second = issued()
    assert not grants.store.rotate_refresh(refresh.record.token_hash, "c2Vjb25k", second, NOW + 90_000, NOW + 9)
    assert stored(grants, refresh) == first_rotation
    assert [stored(grants, token) for token in second] == [None, None]


def test_a_rotation_never_lengthens_a_refresh_tokens_life(grants: Grants) -> None:
    refresh = grant_token(tokens.REFRESH, ttl_ms=10_000)
    grants.store.add(refresh, NOW)
    assert grants.store.rotate_refresh(refresh.record.token_hash, "c2VhbGVk", issued(), NOW + 60_000, NOW + 5)
    found = stored(grants, refresh)
    assert found is not None
    assert found.record.expires_at_ms == NOW + 10_000


def test_a_grant_without_a_record_gets_one_at_its_first_rotation(grants: Grants) -> None:
    """Migration: grants made before records existed."""
    refresh = grant_token(tokens.REFRESH, "grant-old")
    grants.store.add(refresh, NOW)
    tokens_issued = issued("grant-old")
    assert grants.store.rotate_refresh(refresh.record.token_hash, "c2VhbGVk", tokens_issued, NOW + 60_000, NOW + 5)
    newest = max(token.record.expires_at_ms for token in tokens_issued)
    assert grants.store.grants_of("alice") == [
        Grant("grant-old", "alice", "google", "devices", NOW + 5, NOW + 5, newest)
    ]


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
    assert not grants.store.rotate_refresh(token.record.token_hash, "c2VhbGVk", tokens_issued, at + 60_000, at)
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
            refresh.record.token_hash, "c2VhbGVk", [fresh, replace(taken, grant_id="grant-1")], NOW + 60_000, NOW
        )
    assert stored(grants, refresh) == refresh, "the refresh token is not rotated"
    assert stored(grants, fresh) is None
    assert stored(grants, taken) == taken
    assert grants.store.grants_of("alice") == []


def test_rotating_an_unknown_refresh_token_fails(grants: Grants) -> None:
    assert not grants.store.rotate_refresh(UNKNOWN_HASH, "c2VhbGVk", issued(), NOW + 60_000, NOW)


def test_revoking_a_grant_deletes_its_codes_tokens_and_record_only(grants: Grants) -> None:
    mine = link(grants, "grant-1")
    theirs = link(grants, "grant-2")

    assert grants.store.revoke_grant("grant-1") == 4  # the code, two tokens, the record

    assert [stored(grants, token) for token in mine] == [None, None]
    assert [stored(grants, token) for token in theirs] == theirs
    assert [grant.grant_id for grant in grants.store.grants_of("alice")] == ["grant-2"]
    assert grants.store.revoke_grant("grant-1") == 0


def test_revoking_the_empty_grant_id_deletes_nothing(grants: Grants) -> None:
    outside = grant_token(tokens.ACCESS, grant_id="")  # e.g. a token issued by an operator, outside any grant
    grants.store.add(outside, NOW)
    assert grants.store.revoke_grant("") == 0
    assert stored(grants, outside) == outside


def test_a_users_grants_are_listed_oldest_first(grants: Grants) -> None:
    for grant_id, at in (("grant-b", NOW + 2), ("grant-a", NOW + 1)):
        first = replace(code(), record=replace(grant_token(tokens.CODE, grant_id).record), grant_id=grant_id)
        grants.store.add(first, NOW)
        assert grants.store.redeem_code(first.record.token_hash, record(grant_id, at=at), issued(grant_id), at)
    link(grants, "grant-bob", user="bob")
    assert [grant.grant_id for grant in grants.store.grants_of("alice")] == ["grant-a", "grant-b"]
    assert grants.store.grants_of("carol") == []


# The fulfillment's DISCONNECT on what the grant store wrote


def test_a_disconnect_revokes_the_grant_of_its_token_and_keeps_the_user_linked(grants: Grants) -> None:
    ada = link(grants, "grant-ada")
    bob = link(grants, "grant-bob")  # the same account, linked from another Google account
    carol = link(grants, "grant-carol", user="carol")

    assert grants.disconnect("alice", ada[0].record.token_hash) == 4

    assert [stored(grants, token) for token in ada] == [None, None]
    assert [stored(grants, token) for token in bob + carol] == bob + carol
    assert [grant.grant_id for grant in grants.store.grants_of("alice")] == ["grant-bob"]
    assert grants.linked("alice"), "another grant lives"

    assert grants.disconnect("alice", bob[1].record.token_hash) == 4
    assert grants.store.grants_of("alice") == []
    assert not grants.linked("alice"), "the last grant went"
    assert grants.linked("carol")


def test_a_disconnect_with_a_token_outside_any_grant_revokes_those_tokens(grants: Grants) -> None:
    """Migration: tokens from before grants carry no grantId; they go together, and keep the user linked till then."""
    [access, _] = link(grants, "grant-1")
    legacy = [replace(token, grant_id="") for token in issued("")]
    for token in legacy:
        grants.store.add(token, NOW)
    assert grants.disconnect("alice", legacy[0].record.token_hash) == 2
    assert [stored(grants, token) for token in legacy] == [None, None]
    assert stored(grants, access) == access
    assert grants.linked("alice")
    grants.store.revoke_grant("grant-1")
    other_legacy = grant_token(tokens.ACCESS, grant_id="")
    grants.store.add(other_legacy, NOW)
    assert grants.disconnect("alice", other_legacy.record.token_hash) == 1
    assert not grants.linked("alice")


def test_a_rotated_refresh_token_keeps_no_one_linked(grants: Grants) -> None:
    [access, refresh] = link(grants, "grant-1")
    grants.store.add(replace(grant_token(tokens.REFRESH, "grant-old"), rotated_at_ms=NOW - 1), NOW)
    assert grants.disconnect("alice", access.record.token_hash) == 4
    assert stored(grants, refresh) is None
    assert not grants.linked("alice")


def test_a_disconnect_for_every_grant_revokes_them_all(grants: Grants) -> None:
    mine = link(grants, "grant-1") + link(grants, "grant-2")
    theirs = link(grants, "grant-3", user="bob")
    assert grants.disconnect("alice", None) == 8
    assert [stored(grants, token) for token in mine] == [None] * 4
    assert [stored(grants, token) for token in theirs] == theirs
    assert not grants.linked("alice")
    assert grants.linked("bob")


def test_a_disconnect_with_an_unknown_or_foreign_token_revokes_nothing(grants: Grants) -> None:
    mine = link(grants, "grant-1")
    theirs = link(grants, "grant-2", user="bob")
    assert grants.disconnect("alice", UNKNOWN_HASH) == 0
    assert grants.disconnect("alice", theirs[0].record.token_hash) == 0
    assert [stored(grants, token) for token in mine + theirs] == mine + theirs
    assert grants.linked("alice")


# LinkMarker


@dataclass
class Links:
    marker: LinkMarker
    linked_at: Callable[[str], int | None]
    grants: GrantStore  # what the marker asks whether a grant still lives


@pytest.fixture
def links(backend: str, db: Any) -> Links:
    if backend == MEMORY:
        grants = MemoryGrants()
        fake = MemoryLinks(grants)
        return Links(fake, fake.linked.get, grants)
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.linking.grant_store import FirestoreGrantStore
    from functions.platform.firestore import to_ms

    def linked_at(agent_user_id: str) -> int | None:
        data = db.collection("users").document(agent_user_id).get().to_dict() or {}
        return to_ms(data["linkedAt"]) if data.get("linked") is True else None

    return Links(FirestoreFulfillmentStore(db), linked_at, FirestoreGrantStore(db))


def test_marking_a_user_linked_records_when(links: Links) -> None:
    assert links.linked_at("alice") is None
    links.marker.mark_linked("alice", NOW)
    links.marker.mark_linked("alice", NOW + 9)
    assert links.linked_at("alice") == NOW + 9
    assert links.linked_at("bob") is None


def test_a_user_stays_linked_while_a_grant_lives(links: Links) -> None:
    links.marker.mark_linked("alice", NOW)
    first = replace(code(), record=replace(grant_token(tokens.CODE, "grant-1").record), grant_id="grant-1")
    links.grants.add(first, NOW)
    assert links.grants.redeem_code(first.record.token_hash, record("grant-1"), issued("grant-1"), NOW)
    assert not links.marker.unlink_unless_a_grant_lives("alice", NOW + 1)
    assert links.linked_at("alice") == NOW
    links.grants.revoke_grant("grant-1")
    assert links.marker.unlink_unless_a_grant_lives("alice", NOW + 2)
    assert links.linked_at("alice") is None
    links.marker.mark_linked("alice", NOW + 3)
    assert links.linked_at("alice") == NOW + 3, "linked again"
