"""The account-linking rules on in-memory stores, with a clock the tests move: codes, grants, rotation with reuse
detection, throttling, sign-in sessions; and the pages' languages and brand settings."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from functions.core import tokens
from functions.linking import model as linking
from functions.linking import throttling
from functions.linking.model import IssuedTokens, OAuthClient
from functions.linking.service import AccountLinking
from functions.linking.throttling import DEFAULT_LIMITS
from tests.fakes.memory_linking import (
    MemoryAttemptCounters,
    MemoryClients,
    MemoryGrants,
    MemoryLinks,
    MemorySessions,
    MemoryUsers,
)

REDIRECT = "https://oauth-redirect.googleusercontent.com/r/demo-project"
SECRET = "s" * 43
WRONG = "wrong-password-9f3k"
PASSWORD = "correct horse"
OWNER_IP = "198.51.100.7"
ATTACKER_IP = "203.0.113.66"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture(autouse=True)
def quick_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters for these rule tests (the integration tests use the real ones)."""
    from argon2 import PasswordHasher

    from functions.linking import passwords

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def new_service(clock: Clock) -> AccountLinking:
    google = OAuthClient("google", "Google", linking.hash_client_secret(SECRET), (REDIRECT,))
    grants = MemoryGrants()
    return AccountLinking(
        MemoryClients(google),
        MemoryUsers(),
        MemoryAttemptCounters(),
        MemorySessions(),
        grants,
        MemoryLinks(grants),
        clock,
    )


@pytest.fixture
def service(clock: Clock) -> AccountLinking:
    return new_service(clock)


def grants_of(service: AccountLinking) -> MemoryGrants:
    assert isinstance(service.grants, MemoryGrants)
    return service.grants


def users_of(service: AccountLinking) -> MemoryUsers:
    assert isinstance(service.users, MemoryUsers)
    return service.users


def new_code(service: AccountLinking, email: str = "ada@example.com", client_id: str = "google") -> str:
    account = users_of(service).find(email) or users_of(service).add(email, PASSWORD)
    code = tokens.mint(tokens.CODE, account.agent_user_id)
    service.save_code(code, account, client_id, REDIRECT, "", None, None)
    return code


def mint_for(agent_user_id: str, refresh: bool = True) -> IssuedTokens:
    return IssuedTokens(
        tokens.mint(tokens.ACCESS, agent_user_id), tokens.mint(tokens.REFRESH, agent_user_id) if refresh else None
    )


def access_valid(service: AccountLinking, token: str, now: int) -> bool:
    record = grants_of(service).get(tokens.hash_token(token))
    named = tokens.parse(token)
    return record is not None and named is not None and record.record.grants(token, tokens.ACCESS, named[1], now)


def linked(service: AccountLinking, email: str = "ada@example.com") -> tuple[str, IssuedTokens]:
    """A completed account linking: (agentUserId, the tokens of the new grant)."""
    code = new_code(service, email)
    found = service.find_code(code, "google")
    assert found is not None
    issued = mint_for(found.agent_user_id)
    assert service.exchange_code(found, issued)
    return found.agent_user_id, issued


def refreshed(service: AccountLinking, refresh_token: str) -> IssuedTokens | None:
    """What Google gets from the token endpoint for a refresh with `refresh_token` (None: invalid_grant)."""
    found = service.find_refresh_token(refresh_token)
    if found is None:
        return None
    answer = service.refresh(found, refresh_token, found.scope)
    return answer.tokens if answer is not None else None


# clients


def test_redirect_uris_match_exactly() -> None:
    client = OAuthClient("google", "Google", linking.hash_client_secret(SECRET), (REDIRECT,))
    assert client.allows_redirect(REDIRECT)
    for near in (REDIRECT + "/", REDIRECT.upper(), REDIRECT + "?x=1", REDIRECT[:-1], "http" + REDIRECT[5:]):
        assert not client.allows_redirect(near), near


def test_client_secret_is_checked_against_its_hash() -> None:
    client = OAuthClient("google", "Google", linking.hash_client_secret(SECRET), (REDIRECT,))
    assert client.secret_matches(SECRET)
    assert not client.secret_matches(SECRET + "x")
    assert not client.secret_matches("")
    assert SECRET not in repr(client)


def test_scopes_are_granted_only_when_registered() -> None:
    client = OAuthClient("google", "Google", "h", (REDIRECT,), scopes=("devices",))
    assert client.allowed_scope(None) == ""
    assert client.allowed_scope("devices devices") == "devices"
    assert client.allowed_scope("devices admin") is None


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        (REDIRECT, True),
        ("http://127.0.0.1:8123/r/x", True),
        ("http://example.com/cb", False),
        ("https://example.com/cb#frag", False),
        ("oauth-redirect.googleusercontent.com/r/x", False),
        ("javascript:alert(1)", False),
    ],
)
def test_redirect_uris_registered_must_be_https(uri: str, ok: bool) -> None:
    assert (linking.redirect_uri_problem(uri) is None) is ok


# accounts and signing in


def test_agent_user_ids_are_opaque_and_distinct(service: AccountLinking) -> None:
    first = users_of(service).add("Ada@Example.com", PASSWORD)
    second = users_of(service).add("bob@example.com", PASSWORD)
    assert first.agent_user_id != second.agent_user_id
    for account in (first, second):
        assert len(account.agent_user_id) == 32
        assert "@" not in account.agent_user_id
        assert "example" not in account.agent_user_id


def test_sign_in_gives_the_same_answer_for_a_wrong_password_and_an_unknown_account(service: AccountLinking) -> None:
    account = users_of(service).add("ada@example.com", PASSWORD)
    assert service.sign_in(" ADA@example.com ", PASSWORD, OWNER_IP).account == account
    wrong = service.sign_in("ada@example.com", "wrong horse", OWNER_IP)
    unknown = service.sign_in("nobody@example.com", "wrong horse", OWNER_IP)
    assert wrong == unknown == linking.SignIn(None)


def test_failures_from_one_ip_hold_that_ip_back_on_that_account_only(service: AccountLinking, clock: Clock) -> None:
    users_of(service).add("ada@example.com", PASSWORD)
    limit = DEFAULT_LIMITS.account_ip.max_count
    for _ in range(limit):
        assert service.sign_in("ada@example.com", WRONG, ATTACKER_IP) == linking.SignIn(None)
    held = service.sign_in("ada@example.com", PASSWORD, ATTACKER_IP)
    assert held.account is None
    assert 0 < held.retry_after_s <= DEFAULT_LIMITS.account_ip.window_s
    # The owner, elsewhere and on a browser that never signed in, is not held back by the attacker's failures.
    assert service.sign_in("ada@example.com", PASSWORD, OWNER_IP).account is not None
    # Unknown accounts are held back alike: the answers do not tell which accounts exist.
    for _ in range(limit):
        service.sign_in("ghost@example.com", WRONG, ATTACKER_IP)
    assert service.sign_in("ghost@example.com", WRONG, ATTACKER_IP).retry_after_s == held.retry_after_s
    clock.advance(DEFAULT_LIMITS.account_ip.window_s)
    assert service.sign_in("ada@example.com", PASSWORD, ATTACKER_IP).account is not None


def test_one_ip_cannot_check_passwords_of_many_accounts(service: AccountLinking) -> None:
    """60 different e-mails from one client: the IP's limit stops the password checks, whatever the address."""
    checked: list[str] = []
    users = users_of(service)
    original = users.authenticate

    def counting(email: str, password: str) -> Any:
        checked.append(email)
        return original(email, password)

    users.authenticate = counting  # type: ignore[method-assign]
    answers = [service.sign_in(f"user{n}@example.com", WRONG, ATTACKER_IP) for n in range(60)]
    assert len(checked) == DEFAULT_LIMITS.ip.max_count
    assert all(answer.throttled for answer in answers[DEFAULT_LIMITS.ip.max_count :])
    assert not service.sign_in("user1@example.com", WRONG, OWNER_IP).throttled, "other clients are not held back"


def test_a_browser_that_signed_in_before_is_not_held_back_by_failures_from_elsewhere(service: AccountLinking) -> None:
    users_of(service).add("ada@example.com", PASSWORD)
    # Guessers on many addresses fill the account's own counter: browsers it never signed in from wait.
    guessers = [f"203.0.113.{n}" for n in range(DEFAULT_LIMITS.account.max_count)]
    for address in guessers:
        assert service.sign_in("ada@example.com", WRONG, address) == linking.SignIn(None)
    assert service.sign_in("ada@example.com", PASSWORD, OWNER_IP).throttled, "a new browser waits"
    # The owner's browser with its device cookie gets in, from any address.
    assert service.sign_in("ada@example.com", PASSWORD, OWNER_IP, device="owners-tablet").account is not None
    assert service.sign_in("ada@example.com", PASSWORD, guessers[0], device="owners-tablet").account is not None


def test_a_device_cookie_counts_its_own_failures(service: AccountLinking) -> None:
    users_of(service).add("ada@example.com", PASSWORD)
    for _ in range(DEFAULT_LIMITS.device.max_count):
        assert not service.sign_in("ada@example.com", WRONG, OWNER_IP, device="stolen").throttled
    # Past its limit a device cookie is trusted no more: its attempts count as from anywhere.
    assert not service.sign_in("ada@example.com", WRONG, OWNER_IP, device="stolen").throttled
    for _ in range(DEFAULT_LIMITS.account_ip.max_count):
        service.sign_in("ada@example.com", WRONG, OWNER_IP, device="stolen")
    assert service.sign_in("ada@example.com", PASSWORD, OWNER_IP, device="stolen").throttled
    assert service.sign_in("ada@example.com", PASSWORD, OWNER_IP, device="another").account is not None


def test_a_right_password_gives_back_the_failures_it_was_counted_as(service: AccountLinking) -> None:
    users_of(service).add("ada@example.com", PASSWORD)
    limit = DEFAULT_LIMITS.account_ip.max_count
    for _ in range(limit - 1):
        service.sign_in("ada@example.com", WRONG, OWNER_IP)
    assert service.sign_in("ada@example.com", PASSWORD, OWNER_IP).account is not None
    for _ in range(limit):
        assert not service.sign_in("ada@example.com", WRONG, OWNER_IP).throttled


def test_concurrent_sign_ins_count_every_attempt_exactly(service: AccountLinking) -> None:
    users_of(service).add("ada@example.com", PASSWORD)
    start = threading.Barrier(12)
    answers: list[linking.SignIn] = []

    def attempt() -> None:
        start.wait()
        answers.append(service.sign_in("ada@example.com", WRONG, ATTACKER_IP))

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 12
    assert sum(not answer.throttled for answer in answers) == DEFAULT_LIMITS.account_ip.max_count


def test_the_client_ip_is_the_trusted_hop_of_x_forwarded_for() -> None:
    assert throttling.forwarded_client("198.51.100.7", "10.0.0.1", 1) == "198.51.100.7"
    # Whatever the client writes in front is its own say: only the entry the front end appended counts.
    assert throttling.forwarded_client("1.2.3.4, 198.51.100.7", "10.0.0.1", 1) == "198.51.100.7"
    assert throttling.forwarded_client("1.2.3.4, 198.51.100.7, 35.191.0.1", "10.0.0.1", 2) == "198.51.100.7"
    assert throttling.forwarded_client("198.51.100.7", "10.0.0.1", 2) == "10.0.0.1"
    assert throttling.forwarded_client("", "10.0.0.1", 1) == "10.0.0.1"
    assert throttling.forwarded_client("198.51.100.7", "10.0.0.1", 0) == "10.0.0.1"


def test_an_ipv6_client_is_its_64_and_garbage_is_one_client() -> None:
    assert throttling.client_key("2001:db8:1:2:3:4:5:6") == throttling.client_key("2001:db8:1:2:ffff::1")
    assert throttling.client_key("2001:db8:1:2::1") != throttling.client_key("2001:db8:1:3::1")
    assert throttling.client_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert throttling.client_key("not an address") == throttling.client_key("") == throttling.UNKNOWN_CLIENT


# sign-in sessions


def test_a_session_is_good_for_its_authorization_request_and_for_one_consent(
    service: AccountLinking, clock: Clock
) -> None:
    ada = users_of(service).add("ada@example.com", PASSWORD)
    binding = linking.request_binding(["google", REDIRECT, "state-1", None, None, None, "code"])
    other = linking.request_binding(["other", REDIRECT, "state-1", None, None, None, "code"])
    secret = service.start_session(ada, binding)
    assert service.signed_in(secret, binding) == ada
    assert service.signed_in(secret, other) is None, "another client's request"
    assert service.signed_in(secret + "x", binding) is None
    assert service.consume_session(secret, binding) == ada
    assert service.consume_session(secret, binding) is None, "used up"
    assert service.signed_in(secret, binding) is None
    late = service.start_session(ada, binding)
    clock.advance(linking.SESSION_TTL_S)
    assert service.consume_session(late, binding) is None
    assert service.signed_in("", binding) is None


# codes


def test_a_code_is_stored_as_a_hash_and_redeemed_once(service: AccountLinking) -> None:
    code = new_code(service)
    assert code.startswith("ac.")
    stored = grants_of(service).tokens
    assert list(stored) == [tokens.hash_token(code)]
    found = service.find_code(code, "google")
    assert found is not None
    issued = mint_for(found.agent_user_id)
    assert service.exchange_code(found, issued)
    assert isinstance(service.links, MemoryLinks)
    assert service.links.linked == {found.agent_user_id: service.clock()}
    assert not service.exchange_code(found, mint_for(found.agent_user_id)), "a second exchange of the same code"
    assert all(code not in (t.record.token_hash, t.grant_id) for t in stored.values())


def test_a_replayed_code_revokes_the_tokens_it_produced(service: AccountLinking, clock: Clock) -> None:
    code = new_code(service)
    found = service.find_code(code, "google")
    assert found is not None
    issued = mint_for(found.agent_user_id)
    assert service.exchange_code(found, issued)
    assert access_valid(service, issued.access_token, clock())
    assert service.find_code(code, "google") is None
    assert not access_valid(service, issued.access_token, clock())
    assert issued.refresh_token is not None
    assert service.find_refresh_token(issued.refresh_token) is None
    assert service.grants_of(found.agent_user_id) == []


def test_a_code_expires_after_ten_minutes(service: AccountLinking, clock: Clock) -> None:
    code = new_code(service)
    clock.advance(linking.CODE_TTL_S - 1)
    assert service.find_code(code, "google") is not None
    clock.advance(1)
    assert service.find_code(code, "google") is None


def test_a_code_belongs_to_its_client_and_user(service: AccountLinking) -> None:
    code = new_code(service)
    assert service.find_code(code, "other-client") is None
    secret = code.split(".")[2]
    forged = tokens.mint(tokens.CODE, "someone-else").rsplit(".", 1)[0] + "." + secret
    assert service.find_code(forged, "google") is None
    assert service.find_code(code + "x", "google") is None
    assert service.find_code("", "google") is None


def test_tokens_minted_for_another_user_are_refused(service: AccountLinking) -> None:
    code = new_code(service)
    found = service.find_code(code, "google")
    assert found is not None
    with pytest.raises(ValueError, match="grant's user"):
        service.exchange_code(found, mint_for("someone-else"))
    assert service.find_code(code, "google") is not None, "nothing was used up"


# grants: a household links one account several times


def test_each_link_is_a_grant_with_its_client_and_times(service: AccountLinking, clock: Clock) -> None:
    user, first = linked(service)
    clock.advance(60)
    again, second = linked(service)
    assert again == user
    grants = service.grants_of(user)
    assert [(g.client_id, g.created_at_ms) for g in grants] == [("google", clock.now - 60_000), ("google", clock.now)]
    assert second.refresh_token is not None
    clock.advance(3600)
    assert refreshed(service, second.refresh_token) is not None
    assert service.grants_of(user)[1].last_used_at_ms == clock.now
    assert service.grants_of(user)[0].last_used_at_ms == clock.now - 3_660_000
    assert all(token not in repr(grants) for token in (first.access_token, second.access_token))


def test_a_disconnect_revokes_its_own_grant_and_the_last_one_unlinks(service: AccountLinking, clock: Clock) -> None:
    user, ada = linked(service)
    _, bob = linked(service)  # Bob's Google account, linked to the same account
    assert ada.refresh_token is not None
    assert bob.refresh_token is not None
    grants = grants_of(service)

    assert grants.disconnect(user, clock(), tokens.hash_token(ada.access_token)) == 4  # code, tokens, record
    assert not access_valid(service, ada.access_token, clock())
    assert service.find_refresh_token(ada.refresh_token) is None
    assert access_valid(service, bob.access_token, clock()), "the other member keeps QUERY and EXECUTE"
    assert user not in grants.unlinked, "still linked: Report State goes on"
    renewed = refreshed(service, bob.refresh_token)
    assert renewed is not None, "and refresh"

    grants.disconnect(user, clock(), tokens.hash_token(renewed.access_token))
    assert not access_valid(service, renewed.access_token, clock())
    assert user in grants.unlinked
    assert service.grants_of(user) == []


def test_tokens_without_a_grant_keep_working_and_go_together(service: AccountLinking, clock: Clock) -> None:
    """Migration: tokens stored before grants (no grantId) are one grant of their own."""
    user, issued = linked(service)
    grants = grants_of(service)
    old = mint_for(user)
    for token, kind in ((old.access_token, tokens.ACCESS), (old.refresh_token or "", tokens.REFRESH)):
        record = tokens.TokenRecord(tokens.hash_token(token), kind, user, clock() + 3_600_000, client_id="google")
        grants.add(linking.GrantToken(record, grant_id=""), clock())
    assert access_valid(service, old.access_token, clock())
    assert grants.disconnect(user, clock(), tokens.hash_token(old.access_token)) == 2
    assert access_valid(service, issued.access_token, clock()), "the grant is untouched"
    assert user not in grants.unlinked


def test_a_grant_from_before_records_gets_one_at_its_next_refresh(service: AccountLinking, clock: Clock) -> None:
    user, issued = linked(service)
    grants = grants_of(service)
    assert issued.refresh_token is not None
    grants.records.clear()  # as stored by the version before grant records
    assert refreshed(service, issued.refresh_token) is not None
    [grant] = service.grants_of(user)
    assert (grant.created_at_ms, grant.last_used_at_ms) == (clock(), clock())


# refresh tokens


def test_a_refresh_rotates_and_a_repeat_in_the_grace_window_gets_the_same_successor(
    service: AccountLinking, clock: Clock
) -> None:
    _, first = linked(service)
    assert first.refresh_token is not None
    second = refreshed(service, first.refresh_token)
    assert second is not None
    assert second.refresh_token not in (None, first.refresh_token)
    assert access_valid(service, second.access_token, clock())
    clock.advance(linking.REFRESH_GRACE_S - 1)
    # Google's concurrent refreshes: one chain, not three.
    assert refreshed(service, first.refresh_token) == second
    assert refreshed(service, first.refresh_token) == second
    assert sum(t.record.kind == tokens.REFRESH for t in grants_of(service).tokens.values()) == 2
    assert second.refresh_token is not None
    assert refreshed(service, second.refresh_token) is not None


def test_a_repeat_answers_with_the_remaining_lifetime_of_the_same_access_token(
    service: AccountLinking, clock: Clock
) -> None:
    _, first = linked(service)
    assert first.refresh_token is not None
    found = service.find_refresh_token(first.refresh_token)
    assert found is not None
    assert service.refresh(found, first.refresh_token, "") is not None
    clock.advance(20)
    again = service.find_refresh_token(first.refresh_token)
    assert again is not None
    repeat = service.refresh(again, first.refresh_token, "")
    assert repeat is not None
    assert repeat.expires_in == linking.ACCESS_TTL_S - 20


def test_revoking_the_last_grant_for_a_replay_or_a_reuse_unlinks_the_user(
    service: AccountLinking, clock: Clock
) -> None:
    links = service.links
    assert isinstance(links, MemoryLinks)
    user, first = linked(service)
    _, second = linked(service)
    assert first.refresh_token is not None
    assert second.refresh_token is not None
    assert refreshed(service, first.refresh_token) is not None
    clock.advance(linking.REFRESH_GRACE_S)
    assert refreshed(service, first.refresh_token) is None  # a reuse: the first grant goes
    assert user in links.linked, "the second grant lives"
    assert refreshed(service, second.refresh_token) is not None
    clock.advance(linking.REFRESH_GRACE_S)
    assert refreshed(service, second.refresh_token) is None
    assert links.unlinked == {user: clock()}, "the last grant went: Report State stops"


def test_a_rotated_token_used_after_the_window_revokes_its_grant_only(service: AccountLinking, clock: Clock) -> None:
    user, first = linked(service)
    _, other = linked(service)
    assert first.refresh_token is not None
    second = refreshed(service, first.refresh_token)
    assert second is not None
    clock.advance(linking.REFRESH_GRACE_S)
    assert refreshed(service, first.refresh_token) is None, "a reuse"
    assert not access_valid(service, second.access_token, clock()), "the whole grant is revoked (RFC 9700 4.14.2)"
    assert second.refresh_token is not None
    assert refreshed(service, second.refresh_token) is None
    assert access_valid(service, other.access_token, clock()), "the household's other link stays"
    assert len(service.grants_of(user)) == 1


def test_a_rotation_that_lost_a_race_answers_with_the_winners_successor(service: AccountLinking) -> None:
    _, first = linked(service)
    assert first.refresh_token is not None
    stale = service.find_refresh_token(first.refresh_token)  # read before the other refresh stored its rotation
    winner = refreshed(service, first.refresh_token)
    assert stale is not None
    assert winner is not None
    loser = service.refresh(stale, first.refresh_token, "")
    assert loser is not None
    assert loser.tokens == winner


def test_a_sealed_successor_opens_only_with_its_refresh_token() -> None:
    from functions.linking import successors

    token = tokens.mint(tokens.REFRESH, "ada")
    successor = successors.Successor("at.x.y", "rt.x.z", 123, "")
    sealed = successors.seal(token, successor)
    assert successors.unseal(token, sealed) == successor
    assert successors.unseal(tokens.mint(tokens.REFRESH, "ada"), sealed) is None
    assert successors.unseal(token, sealed[:-4] + "AAAA") is None
    assert "rt.x.z" not in sealed


def test_the_grace_window_cannot_be_shorter_than_thirty_seconds() -> None:
    with pytest.raises(ValueError, match="at least 30"):
        AccountLinking(
            MemoryClients(),
            MemoryUsers(),
            MemoryAttemptCounters(),
            MemorySessions(),
            MemoryGrants(),
            MemoryLinks(),
            refresh_grace_s=29,
        )


# wiring


def test_a_maker_can_plug_in_their_own_user_directory() -> None:
    from functions.linking.wiring import user_directory

    assert isinstance(user_directory("tests.fakes.memory_linking:MemoryUsers"), MemoryUsers)
    for spec in ("no-colon", "tests.fakes.memory_linking:", "tests.fakes.memory_linking:not a name"):
        with pytest.raises(ValueError, match=r"package\.module:factory"):
            user_directory(spec)


def test_the_session_key_is_required_outside_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.linking.wiring import SessionKeyMissing, session_key

    monkeypatch.setenv("ACCOUNT_LINKING_SESSION_KEY", "k" * 64)
    assert session_key() == b"k" * 64
    monkeypatch.setenv("ACCOUNT_LINKING_SESSION_KEY", "too-short")
    with pytest.raises(SessionKeyMissing, match="at least 32"):
        session_key()
    monkeypatch.delenv("ACCOUNT_LINKING_SESSION_KEY")
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    with pytest.raises(SessionKeyMissing, match="not set"):
        session_key()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    assert len(session_key()) == 32
    assert session_key() == session_key()


def test_the_client_ip_hop_setting_is_a_whole_number(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.platform import config

    assert config.account_linking_client_ip_hop() == 1
    monkeypatch.setenv("ACCOUNT_LINKING_CLIENT_IP_HOP", "2")
    assert config.account_linking_client_ip_hop() == 2
    for bad in ("-1", "last"):
        monkeypatch.setenv("ACCOUNT_LINKING_CLIENT_IP_HOP", bad)
        with pytest.raises(ValueError, match="ACCOUNT_LINKING_CLIENT_IP_HOP"):
            config.account_linking_client_ip_hop()
