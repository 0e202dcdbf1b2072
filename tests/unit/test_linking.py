"""The account-linking rules on in-memory stores, with a clock the tests move: codes, rotation, throttling."""

from __future__ import annotations

import pytest

from functions.core import tokens
from functions.linking import model as linking
from functions.linking.model import IssuedTokens, OAuthClient
from functions.linking.service import AccountLinking
from tests.fakes.memory_linking import MemoryClients, MemoryGrants, MemoryLinks, MemoryThrottle, MemoryUsers

REDIRECT = "https://oauth-redirect.googleusercontent.com/r/demo-project"
SECRET = "s" * 43
WRONG = "wrong-password-9f3k"


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


@pytest.fixture
def service(clock: Clock) -> AccountLinking:
    google = OAuthClient("google", "Google", linking.hash_client_secret(SECRET), (REDIRECT,))
    return AccountLinking(MemoryClients(google), MemoryUsers(), MemoryThrottle(), MemoryGrants(), MemoryLinks(), clock)


def grants_of(service: AccountLinking) -> MemoryGrants:
    assert isinstance(service.grants, MemoryGrants)
    return service.grants


def users_of(service: AccountLinking) -> MemoryUsers:
    assert isinstance(service.users, MemoryUsers)
    return service.users


def new_code(service: AccountLinking, email: str = "ada@example.com", client_id: str = "google") -> str:
    account = users_of(service).find(email) or users_of(service).add(email, "correct horse")
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


# accounts


def test_agent_user_ids_are_opaque_and_distinct(service: AccountLinking) -> None:
    first = users_of(service).add("Ada@Example.com", "correct horse")
    second = users_of(service).add("bob@example.com", "correct horse")
    assert first.agent_user_id != second.agent_user_id
    for account in (first, second):
        assert len(account.agent_user_id) == 32
        assert "@" not in account.agent_user_id
        assert "example" not in account.agent_user_id


def test_sign_in_gives_the_same_answer_for_a_wrong_password_and_an_unknown_account(service: AccountLinking) -> None:
    account = users_of(service).add("ada@example.com", "correct horse")
    assert service.sign_in(" ADA@example.com ", "correct horse").account == account
    wrong = service.sign_in("ada@example.com", "wrong horse")
    unknown = service.sign_in("nobody@example.com", "wrong horse")
    assert wrong == unknown == linking.SignIn(None)


def test_sign_in_attempts_are_limited_per_account_whether_it_exists_or_not(
    service: AccountLinking, clock: Clock
) -> None:
    users_of(service).add("ada@example.com", "correct horse")
    for _ in range(linking.MAX_SIGN_IN_ATTEMPTS):
        assert not service.sign_in("ada@example.com", WRONG).throttled
        assert not service.sign_in("ghost@example.com", WRONG).throttled
    locked = service.sign_in("ada@example.com", "correct horse")
    ghost = service.sign_in("ghost@example.com", "correct horse")
    assert locked.account is None
    assert locked.throttled
    assert ghost.throttled
    assert ghost.retry_after_s == locked.retry_after_s
    assert 0 < locked.retry_after_s <= linking.SIGN_IN_WINDOW_S
    # Other accounts are not affected.
    assert not service.sign_in("carol@example.com", WRONG).throttled
    clock.advance(linking.SIGN_IN_WINDOW_S)
    assert service.sign_in("ada@example.com", "correct horse").account is not None


def test_a_successful_sign_in_clears_the_count(service: AccountLinking) -> None:
    users_of(service).add("ada@example.com", "correct horse")
    for _ in range(linking.MAX_SIGN_IN_ATTEMPTS - 1):
        service.sign_in("ada@example.com", WRONG)
    assert service.sign_in("ada@example.com", "correct horse").account is not None
    for _ in range(linking.MAX_SIGN_IN_ATTEMPTS - 1):
        assert not service.sign_in("ada@example.com", WRONG).throttled


def test_count_attempt_window() -> None:
    window, wait = linking.count_attempt(None, 1000, max_attempts=2, window_s=10)
    assert (window, wait) == (linking.AttemptWindow(1000, 1), 0)
    window, wait = linking.count_attempt(window, 2000, max_attempts=2, window_s=10)
    assert wait == 0
    window, wait = linking.count_attempt(window, 3000, max_attempts=2, window_s=10)
    assert wait == 8000
    assert linking.count_attempt(window, 11_000, max_attempts=2, window_s=10) == (linking.AttemptWindow(11_000, 1), 0)


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


# refresh tokens


def linked(service: AccountLinking) -> tuple[str, IssuedTokens]:
    code = new_code(service)
    found = service.find_code(code, "google")
    assert found is not None
    issued = mint_for(found.agent_user_id)
    assert service.exchange_code(found, issued)
    return found.agent_user_id, issued


def test_refresh_rotates_and_the_old_token_works_for_the_grace_window(service: AccountLinking, clock: Clock) -> None:
    user, first = linked(service)
    assert first.refresh_token is not None
    old = service.find_refresh_token(first.refresh_token)
    assert old is not None
    second = mint_for(user)
    assert service.refresh(old, second)
    assert access_valid(service, second.access_token, clock())
    # Google's concurrent refresh with the same token, inside the window, still works.
    clock.advance(linking.REFRESH_GRACE_S - 1)
    again = service.find_refresh_token(first.refresh_token)
    assert again is not None
    assert service.refresh(again, mint_for(user))
    clock.advance(1)
    assert service.find_refresh_token(first.refresh_token) is None
    assert second.refresh_token is not None
    assert service.find_refresh_token(second.refresh_token) is not None


def test_a_rotated_token_used_after_the_window_cannot_be_stored(service: AccountLinking, clock: Clock) -> None:
    user, first = linked(service)
    assert first.refresh_token is not None
    old = service.find_refresh_token(first.refresh_token)
    assert old is not None
    assert service.refresh(old, mint_for(user))
    clock.advance(linking.REFRESH_GRACE_S)
    late = mint_for(user)
    assert not service.refresh(old, late)
    assert not access_valid(service, late.access_token, clock())


def test_the_grace_window_cannot_be_shorter_than_thirty_seconds() -> None:
    with pytest.raises(ValueError, match="at least 30"):
        AccountLinking(
            MemoryClients(), MemoryUsers(), MemoryThrottle(), MemoryGrants(), MemoryLinks(), refresh_grace_s=29
        )


def test_disconnect_removes_refresh_tokens(service: AccountLinking) -> None:
    user, issued = linked(service)
    assert issued.refresh_token is not None
    assert grants_of(service).disconnect(user) == 3  # the used code, the access and the refresh token
    assert service.find_refresh_token(issued.refresh_token) is None


def test_tokens_minted_for_another_user_are_refused(service: AccountLinking) -> None:
    code = new_code(service)
    found = service.find_code(code, "google")
    assert found is not None
    with pytest.raises(ValueError, match="grant's user"):
        service.exchange_code(found, mint_for("someone-else"))
    assert service.find_code(code, "google") is not None, "nothing was used up"


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
