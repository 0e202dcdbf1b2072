"""`python -m functions users ...` and `clients ...` on the Firestore emulator."""

from __future__ import annotations

import io
import json
import os
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
    assert json.loads(out) == shown


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
