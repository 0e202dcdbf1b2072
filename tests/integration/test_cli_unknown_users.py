"""A typo in a user id is not a new user: the operators' CLI refuses a --user with neither devices nor an account,
unless --create says it is new (issue 15). On the test session's Firestore emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.cli_runner import run_cli, run_cli_many
from tools import emulators

pytestmark = pytest.mark.emulator

PLUG = {
    "id": "plug-1",
    "type": "action.devices.types.OUTLET",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Kettle plug"},
    "willReportState": True,
}
UNKNOWN = "no user 'not-a-user': it has neither devices nor an account (a typo?); --create if it is a new user"


def linked_users(db: Any) -> list[str]:
    return [snap.id for snap in db.collection("users").stream() if (snap.to_dict() or {}).get("linked")]


def test_commands_that_would_make_a_typo_a_new_user_refuse_it(firestore_db: Any) -> None:
    """`devices add --user not-a-user`, `token issue`, `google sync`: each used to write for a user nobody has."""
    closed = f"http://127.0.0.1:{emulators.free_port()}"
    refusals = run_cli_many(
        [
            (["devices", "add", "--user", "not-a-user", "--file", "-"], json.dumps(PLUG)),
            (["token", "issue", "--user", "not-a-user"], None),
            (["google", "sync", "--user", "not-a-user", "--url", closed], None),
            (["homegraph", "request-sync", "--user", "not-a-user"], None),
        ]
    )
    for done in refusals:
        assert done.code == 1, done.stdout
        assert UNKNOWN in done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout == ""
    assert list(firestore_db.collection_group("devices").stream()) == []
    assert linked_users(firestore_db) == [], "the phantom user was not marked linked"


def test_create_means_it_and_a_user_with_devices_or_an_account_is_known(firestore_db: Any) -> None:
    created = run_cli("devices", "add", "--user", "new-user", "--create", "--file", "-", stdin=json.dumps(PLUG))
    assert created.code == 0, created.stderr
    assert run_cli("token", "issue", "--user", "new-user").code == 0, "a user with devices is known"
    account = run_cli("users", "add", "--email", "ada@example.com", stdin="a long enough password\n")
    assert account.code == 0, account.stderr
    agent_user_id = account.json()["agentUserId"]
    added = run_cli("devices", "add", "--user", agent_user_id, "--file", "-", stdin=json.dumps(PLUG))
    assert added.code == 0, "a user with an account is known, devices or not"


def test_reads_of_an_unknown_user_say_so_and_refusals_name_it(firestore_db: Any) -> None:
    listed = run_cli("devices", "list", "--user", "not-a-user")
    assert listed.code == 0
    assert listed.json() == []
    assert "'not-a-user' has neither devices nor an account (a typo?)" in listed.stderr
    renamed = run_cli("devices", "rename", "--user", "not-a-user", "--id", "plug-1", "--name", "Tea")
    assert renamed.code == 1
    assert "no device 'plug-1' for user 'not-a-user' ('not-a-user' has neither devices nor an account" in (
        renamed.stderr
    )
