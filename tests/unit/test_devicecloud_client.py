"""The client for device clouds (devicecloud/): what it checks, what it depends on, and that it shares the contract.

Against the Pub/Sub emulator it runs in tests/integration/test_device_clouds.py.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

import devicecloud
from devicecloud import contract
from functions.core.commands import command_message

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "devicecloud"
CONTRACT = ROOT / "functions" / "core" / "contracts" / "state-message.json"

VALID = {"agentUserId": "u1", "deviceId": "lamp-1", "states": {"on": True}, "observedAt": "2026-11-21T10:00:00.123Z"}
# One message breaking each rule of the contract.
BROKEN: list[dict[str, Any]] = [
    {k: v for k, v in VALID.items() if k != "states"},
    {**VALID, "agentUserId": ""},
    {**VALID, "agentUserId": "a/b"},
    {**VALID, "deviceId": "x" * 1025},
    {**VALID, "deviceId": 7},
    {**VALID, "states": []},
    {**VALID, "states": {f"k{n}": n for n in range(201)}},
    {**VALID, "observedAt": "yesterday"},
    {**VALID, "observedAt": "2026-11-21 10:00:00"},
    {**VALID, "online": "yes"},
    {**VALID, "notifications": {}, "eventId": "e"},
    {**VALID, "notifications": {"ObjectDetection": 1}, "eventId": "e"},
    {**VALID, "notifications": {"ObjectDetection": {}}},
    {**VALID, "eventId": "e"},
    {**VALID, "errorCode": "lockFailure"},
    {**VALID, "commandId": "has space"},
    {**VALID, "commandId": "c1", "errorCode": "9lives"},
    {**VALID, "color": "red"},
    "not an object",
]


def test_the_client_checks_the_contract_as_jsonschema_does() -> None:
    schema = json.loads(CONTRACT.read_text())
    reference = Draft7Validator(schema)
    for example in schema["examples"]:
        assert contract.problems(example) == [], example
    assert contract.problems(VALID) == []
    for message in BROKEN:
        assert not reference.is_valid(message), message  # the case does break the contract
        assert contract.problems(message), message


def test_a_contract_with_a_keyword_the_client_cannot_check_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = copy.deepcopy(contract.contract())
    schema["properties"]["deviceId"]["uniqueItems"] = True
    with pytest.raises(ValueError, match="uniqueItems"):
        contract._check_keywords(schema, "")


def test_the_packaged_contract_is_the_fulfillment_s_own_file() -> None:
    packaged = PACKAGE / contract.CONTRACT_FILE
    assert packaged.is_symlink(), "a link, not a copy: one contract for both sides"
    assert packaged.resolve() == CONTRACT.resolve()
    assert contract.contract() == json.loads(CONTRACT.read_text())


def test_a_state_message_is_checked_before_it_is_published() -> None:
    data = devicecloud.state_message("u1", "front-door", {"isJammed": True}, command_id="c1", error_code="lockFailure")
    sent = json.loads(data)
    assert sent["commandId"] == "c1"
    assert sent["errorCode"] == "lockFailure"
    assert sent["observedAt"].endswith("Z")
    with pytest.raises(devicecloud.InvalidStateMessage, match="errorCode needs commandId"):
        devicecloud.state_message("u1", "front-door", {}, error_code="lockFailure")
    with pytest.raises(devicecloud.InvalidStateMessage, match="not JSON"):
        devicecloud.state_message("u1", "lamp", {"brightness": float("nan")})


def test_a_command_of_the_commands_topic_reads_back() -> None:
    data = command_message("c1", "u1", "front-door", "action.devices.commands.LockUnlock", {"lock": True}, 0, True)
    command = devicecloud.Command.from_message(data)
    assert (command.command_id, command.agent_user_id, command.device_id) == ("c1", "u1", "front-door")
    assert command.name == "LockUnlock"
    assert command.params == {"lock": True}
    assert command.expects_result is True
    assert command.issued_at == "1970-01-01T00:00:00.000Z"


def test_the_client_depends_on_google_cloud_pubsub_only() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["google-cloud-pubsub"]
    stdlib = set(sys.stdlib_module_names)
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top == "devicecloud" or name.startswith("google."), f"{module.name}: {name}"


def test_the_client_never_imports_the_fulfillment() -> None:
    """Run where `functions` cannot be imported at all: the client works, and loads none of it."""
    script = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "functions" or name.startswith("functions."):
            raise ImportError("the client imported " + name)
sys.meta_path.insert(0, Refuse())
import devicecloud
devicecloud.state_message("u1", "lamp", {"on": True})
body = b"{}"
devicecloud.verify_webhook(
    {"X-Smarthome-Timestamp": "100", "X-Smarthome-Signature": devicecloud.sign_webhook("s", "100", body)},
    body, "s", now=100,
)
devicecloud.DeviceCloud("p").publisher()
assert not [m for m in sys.modules if m == "functions" or m.startswith("functions.")]
print("ok")
"""
    # An emulator address makes the Pub/Sub client need no credentials; nothing is published.
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": "127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
