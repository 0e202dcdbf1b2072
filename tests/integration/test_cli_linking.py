"""`python -m functions users ...` and `clients ...` on the Firestore emulator."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
from typing import Any

import pytest

from functions.linking import model as linking
from tests.integration.conftest import REPO_ROOT
from tools import cli

pytestmark = pytest.mark.emulator
GOOGLE = "https://oauth-redirect.googleusercontent.com/r/demo-smart-home-test"
SANDBOX = "https://oauth-redirect-sandbox.googleusercontent.com/r/demo-smart-home-test"


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *argv: str) -> Any:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def documents(db: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {snap.id: snap.to_dict() for snap in db.collection(collection).stream()}


def test_users_add_reads_the_password_from_stdin_and_stores_an_argon2_hash(
    firestore_db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.linking.store import FirestoreUserDirectory

    code, out, _ = run(monkeypatch, capsys, "s3cret password\n", "users", "add", "--email", " Ada@Example.com ")
    assert code == 0
    shown = json.loads(out)
    assert shown["email"] == "ada@example.com"
    assert len(shown["agentUserId"]) == 32
    assert "ada" not in shown["agentUserId"]
    stored = documents(firestore_db, "accounts")
    assert list(stored) == [linking.account_key("ada@example.com")]
    account = next(iter(stored.values()))
    assert account["passwordHash"].startswith("$argon2id$")
    assert "s3cret" not in json.dumps(account, default=str)
    assert account["agentUserId"] == shown["agentUserId"]
    directory = FirestoreUserDirectory()
    signed_in = directory.authenticate("ADA@example.com", "s3cret password")
    assert signed_in is not None
    assert signed_in.agent_user_id == shown["agentUserId"]
    assert directory.authenticate("ada@example.com", "s3cret password\n") is None
    code, out, _ = run(monkeypatch, capsys, "", "users", "show", "--email", "ada@example.com")
    assert code == 0
    assert json.loads(out) == {**shown, "grants": []}, "not linked yet"


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("ada@example.com", "short\n", "at least 8"),
        ("not-an-email", "long enough password\n", "name@example.com"),
        ("", "long enough password\n", "empty"),
        ("ada@example.com", "", "at least 8"),
    ],
)
def test_users_add_refuses_bad_input_and_writes_nothing(
    firestore_db: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    email: str,
    password: str,
    message: str,
) -> None:
    code, out, err = run(monkeypatch, capsys, password, "users", "add", "--email", email)
    assert code == 1
    assert message in err
    assert out == ""
    assert documents(firestore_db, "accounts") == {}


def test_users_add_twice_is_refused(
    firestore_db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, capsys, "first password\n", "users", "add", "--email", "ada@example.com")[0] == 0
    before = documents(firestore_db, "accounts")
    code, _, err = run(monkeypatch, capsys, "second password\n", "users", "add", "--email", "ADA@example.com")
    assert code == 1
    assert "already exists" in err
    assert documents(firestore_db, "accounts") == before
    assert run(monkeypatch, capsys, "", "users", "show", "--email", "bob@example.com")[0] == 1


def test_clients_add_prints_the_secret_once_and_stores_its_hash(
    firestore_db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OAUTH_CLIENT_SECRET", raising=False)
    code, out, err = run(
        monkeypatch, capsys, "", "clients", "add", "--id", "google", "--redirect-uri", GOOGLE, "--redirect-uri", SANDBOX
    )
    assert code == 0
    assert "shown only now" in err
    shown = json.loads(out)
    secret = shown["clientSecret"]
    assert len(secret) >= 43
    stored = documents(firestore_db, "oauthClients")["google"]
    assert stored["secretHash"] == linking.hash_client_secret(secret)
    assert secret not in json.dumps(stored, default=str)
    assert stored["redirectUris"] == [GOOGLE, SANDBOX]
    assert stored["grantTypes"] == ["authorization_code", "refresh_token"]
    code, _, err = run(monkeypatch, capsys, "", "clients", "add", "--id", "google", "--redirect-uri", GOOGLE)
    assert code == 1
    assert "--replace" in err
    assert documents(firestore_db, "oauthClients")["google"] == stored
    code, out, _ = run(
        monkeypatch, capsys, "", "clients", "add", "--id", "google", "--redirect-uri", GOOGLE, "--replace"
    )
    assert code == 0
    replaced = documents(firestore_db, "oauthClients")["google"]
    assert replaced["secretHash"] == linking.hash_client_secret(json.loads(out)["clientSecret"])
    assert replaced["secretHash"] != stored["secretHash"]


def test_clients_add_takes_the_secret_from_the_environment(
    firestore_db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "from-secret-manager-" + "z" * 30
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", secret)
    code, out, _ = run(monkeypatch, capsys, "", "clients", "add", "--id", "google", "--redirect-uri", GOOGLE)
    assert code == 0
    assert secret not in out
    assert documents(firestore_db, "oauthClients")["google"]["secretHash"] == linking.hash_client_secret(secret)
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "too short")
    code, _, err = run(monkeypatch, capsys, "", "clients", "add", "--id", "other", "--redirect-uri", GOOGLE)
    assert code == 1
    assert "at least 32" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--id", "google", "--redirect-uri", "http://example.com/cb"], "https"),
        (["--id", "google", "--redirect-uri", GOOGLE + "#x"], "fragment"),
        (["--id", "bad id/", "--redirect-uri", GOOGLE], "client id"),
        (["--id", "google", "--redirect-uri", GOOGLE, "--scope", "a b"], "spaces"),
    ],
)
def test_clients_add_refuses_bad_input_and_writes_nothing(
    firestore_db: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("OAUTH_CLIENT_SECRET", raising=False)
    code, out, err = run(monkeypatch, capsys, "", "clients", "add", *argv)
    assert code == 1
    assert message in err
    assert out == ""
    assert documents(firestore_db, "oauthClients") == {}


def test_python_dash_m_functions_users_add(firestore_db: Any) -> None:
    env = {**os.environ, "OAUTH_CLIENT_SECRET": ""}
    done = subprocess.run(
        [sys.executable, "-m", "functions", "users", "add", "--email", "cli@example.com"],
        input="a password from a pipe\n",
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["email"] == "cli@example.com"
    assert "a password from a pipe" not in done.stdout + done.stderr


# The operators' commands on accounts with grants


def linked_account(firestore_db: Any, email: str = "ada@example.com", grants: int = 2) -> Any:
    """An account linked `grants` times (as a household's Google accounts do), with a device."""
    from functions.core import tokens
    from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
    from functions.linking.grant_store import FirestoreGrantStore
    from functions.linking.model import Grant, GrantToken, grant_record_id
    from functions.linking.store import FirestoreUserDirectory
    from tools.cli import validated_devices

    account = FirestoreUserDirectory().add(email, "s3cret password")
    store = FirestoreGrantStore()
    now = 1_800_000_000_000
    for n in range(grants):
        code = tokens.mint(tokens.CODE, account.agent_user_id)
        record = tokens.TokenRecord(
            tokens.hash_token(code), tokens.CODE, account.agent_user_id, now + 600_000, client_id="google"
        )
        grant_id = secrets.token_hex(16)
        store.add(GrantToken(record, grant_id), now)
        access = tokens.mint(tokens.ACCESS, account.agent_user_id)
        issued = GrantToken(
            tokens.TokenRecord(tokens.hash_token(access), tokens.ACCESS, account.agent_user_id, 4_000_000_000_000),
            grant_id,
        )
        grant = Grant(grant_id, account.agent_user_id, "google", "", now + n, now + n, 4_000_000_000_000)
        assert store.redeem_code(record.token_hash, grant, [issued], now)
        assert firestore_db.collection("tokens").document(grant_record_id(grant_id)).get().exists
    FirestoreFulfillmentStore().mark_linked(account.agent_user_id, now)
    lamp = {
        "id": "lamp",
        "type": "action.devices.types.LIGHT",
        "traits": ["action.devices.traits.OnOff"],
        "willReportState": True,
    }
    FirestoreDeviceRegistry().add(account.agent_user_id, validated_devices([{**lamp, "name": {"name": "Lamp"}}]))
    return account


def test_users_show_lists_the_grants_and_never_a_token(
    firestore_db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    account = linked_account(firestore_db)
    code, out, _ = run(monkeypatch, capsys, "", "users", "show", "--email", "ada@example.com")
    assert code == 0
    shown = json.loads(out)
    assert shown["agentUserId"] == account.agent_user_id
    assert [(g["client"], g["created"], g["live"]) for g in shown["grants"]] == [
        ("google", "2027-01-15T08:00:00.000Z", True),
        ("google", "2027-01-15T08:00:00.001Z", True),
    ]
    assert all(set(grant) == {"grant", "client", "created", "lastUsed", "live"} for grant in shown["grants"])
    assert "at." not in out


def test_users_list_prints_every_account(
    firestore_db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for email in ("bob@example.com", "ada@example.com"):
        assert run(monkeypatch, capsys, "a long password\n", "users", "add", "--email", email)[0] == 0
    code, out, _ = run(monkeypatch, capsys, "", "users", "list")
    assert code == 0
    listed = [json.loads(line) for line in out.splitlines()]
    assert [entry["email"] for entry in listed] == ["ada@example.com", "bob@example.com"]
    assert all(len(entry["agentUserId"]) == 32 and entry["created"] for entry in listed)


def test_users_unlock_and_set_password_clear_the_accounts_throttling(
    firestore_db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.linking import throttling
    from functions.linking.store import FirestoreAttemptCounters, FirestoreUserDirectory

    assert run(monkeypatch, capsys, "first password\n", "users", "add", "--email", "ada@example.com")[0] == 0
    counters = FirestoreAttemptCounters()
    key = linking.account_key("ada@example.com")
    held = throttling.counter(throttling.DEFAULT_LIMITS.account, key, 1_800_000_000_000, key)
    counters.add(held, 99)
    counters.add(throttling.counter(throttling.DEFAULT_LIMITS.ip, "203.0.113.9", 1_800_000_000_000), 99)
    code, out, _ = run(monkeypatch, capsys, "", "users", "unlock", "--email", "ADA@example.com")
    assert code == 0
    assert json.loads(out) == {"email": "ada@example.com", "countersCleared": 1}
    assert len(documents(firestore_db, "signInAttempts")) == 1, "a client IP's counter is no account's"
    counters.add(held, 99)
    code, out, _ = run(monkeypatch, capsys, "second password\n", "users", "set-password", "--email", "ada@example.com")
    assert code == 0
    assert json.loads(out) == {"email": "ada@example.com", "passwordSet": True, "countersCleared": 1}
    directory = FirestoreUserDirectory()
    assert directory.authenticate("ada@example.com", "second password") is not None
    assert directory.authenticate("ada@example.com", "first password") is None
    assert run(monkeypatch, capsys, "short\n", "users", "set-password", "--email", "ada@example.com")[0] == 1
    assert run(monkeypatch, capsys, "", "users", "unlock", "--email", "bob@example.com")[0] == 1
    assert directory.authenticate("ada@example.com", "second password") is not None


@pytest.mark.parametrize("with_devices", [False, True])
def test_users_remove_revokes_every_grant_and_keeps_the_devices_unless_asked(
    firestore_db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], with_devices: bool
) -> None:
    account = linked_account(firestore_db)
    other = linked_account(firestore_db, "bob@example.com", grants=1)
    extra = ["--with-devices"] if with_devices else []
    code, out, err = run(monkeypatch, capsys, "", "users", "remove", "--email", "ada@example.com", *extra)
    assert code == 0
    shown = json.loads(out)
    assert shown["credentialsRevoked"] == 6  # two grants: a code, an access token and a record each
    assert shown["devicesRemoved"] == (["lamp"] if with_devices else [])
    assert ("--with-devices" in err) is not with_devices
    user = firestore_db.collection("users").document(account.agent_user_id)
    assert [d for d in documents(firestore_db, "tokens").values() if d["agentUserId"] == account.agent_user_id] == []
    assert user.get().to_dict()["linked"] is False
    assert [snap.id for snap in user.collection("devices").stream()] == ([] if with_devices else ["lamp"])
    assert list(documents(firestore_db, "accounts")) == [linking.account_key("bob@example.com")]
    assert [d for d in documents(firestore_db, "tokens").values() if d["agentUserId"] == other.agent_user_id]
    assert run(monkeypatch, capsys, "", "users", "remove", "--email", "ada@example.com")[0] == 1
