"""firebase.json (for teams who start the emulators with `firebase emulators:start`) matches the local stack."""

from __future__ import annotations

import json

from functions.platform import config
from tests.infra.facts import ROOT
from tools import stack


def test_firebase_json_names_the_stack_hosts_ports_and_rules() -> None:
    config = json.loads((ROOT / "firebase.json").read_text())
    emulators = config["emulators"]
    assert emulators["singleProjectMode"] is True
    for name in ("firestore", "pubsub"):
        assert emulators[name] == {"host": stack.HOST, "port": stack.DEFAULT_PORTS[name]}, name
    assert (ROOT / config["firestore"]["rules"]).is_file()


def test_the_emulators_project_is_a_demo_project() -> None:
    # demo- projects never reach a real Google Cloud project, whatever the credentials on the machine.
    project = json.loads((ROOT / ".firebaserc").read_text())["projects"]["default"]
    assert project.startswith("demo-")
    assert project == config.DEFAULT_PROJECT, "the project the stack and the CLI use when none is set"
