"""The operators' CLI as its own process on the emulator: devices list/rename/remove, token issue, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.cli_runner import run_cli
from tests.integration.conftest import Google
from tools.google import query_request

pytestmark = pytest.mark.emulator

PLUG = {
    "id": "plug-1",
    "type": "action.devices.types.OUTLET",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Kettle plug"},
    "willReportState": True,
}


def test_add_list_rename_remove(firestore_db: Any) -> None:
    added = run_cli("devices", "add", "--user", "u1", "--create", "--file", "-", stdin=json.dumps([PLUG]))
    assert added.code == 0, added.stderr
    assert added.json() == {"added": ["plug-1"]}

    again = run_cli("devices", "add", "--user", "u1", "--file", "-", stdin=json.dumps(PLUG))
    assert again.code == 1
    assert "already registered" in again.stderr

    renamed = run_cli("devices", "rename", "--user", "u1", "--id", "plug-1", "--name", "Tea plug")
    assert renamed.code == 0, renamed.stderr
    listed = run_cli("devices", "list", "--user", "u1")
    assert listed.code == 0
    [device] = listed.json()
    assert device["name"] == {"name": "Tea plug"}
    assert device["state"] == {"on": False}
    assert device["online"] is True

    firestore_db.collection("users").document("u1").collection("devicePins").document("plug-1").set({"hash": "x"})
    removed = run_cli("devices", "remove", "--user", "u1", "--id", "plug-1")
    assert removed.code == 0, removed.stderr
    assert run_cli("devices", "list", "--user", "u1").json() == []
    pins = firestore_db.collection("users").document("u1").collection("devicePins").document("plug-1").get()
    assert not pins.exists, "the device's PIN outlived it"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("devices", "rename", "--user", "u1", "--id", "nope", "--name", "X"), "no device 'nope'"),
        (("devices", "rename", "--user", "u1", "--id", "plug-1", "--name", "  "), "may not be empty"),
        (("devices", "remove", "--user", "u1", "--id", "nope"), "no device 'nope'"),
        (("token", "issue", "--user", "u1", "--ttl", "0"), "--ttl must be positive"),
        (("devices", "add", "--user", "u1", "--file", "/nonexistent.json"), "cannot read"),
    ],
)
def test_refusals_say_why_and_exit_1(firestore_db: Any, args: tuple[str, ...], message: str) -> None:
    done = run_cli(*args)
    assert done.code == 1
    assert message in done.stderr


def test_bad_json_is_refused_and_nothing_is_written(firestore_db: Any) -> None:
    done = run_cli("devices", "add", "--user", "u1", "--file", "-", stdin='[{"id": "x", ')
    assert done.code == 1
    assert "not valid JSON" in done.stderr
    half_bad = [PLUG, {**PLUG, "id": "plug-2", "traits": ["action.devices.traits.Nope"]}]
    done = run_cli("devices", "add", "--user", "u1", "--file", "-", stdin=json.dumps(half_bad))
    assert done.code == 1
    assert "plug-2" in done.stderr
    assert run_cli("devices", "list", "--user", "u1").json() == []


def test_token_issue_prints_a_working_token_alone(
    fulfillment_app: Any, add_devices: Callable[..., None], firestore_db: Any
) -> None:
    add_devices("u1", [PLUG])
    done = run_cli("token", "issue", "--user", "u1", "--ttl", "120")
    assert done.code == 0, done.stderr
    token = done.stdout.strip()
    assert "\n" not in token
    status, body = Google(fulfillment_app, token).post(query_request(["plug-1"]))
    assert status == 200
    assert body["payload"]["devices"]["plug-1"]["status"] == "SUCCESS"
    stored = [snap.id for snap in firestore_db.collection("tokens").stream()]
    assert token not in json.dumps(stored)
