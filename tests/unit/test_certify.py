"""`google certify`'s own parts, without a stack: the params it generates from the traits' schemas and the
devices' attributes (valid, and changing the state where a command can), the commands it leaves alone, and its
JUnit XML and table. The checks against a running stack are tests/integration/test_certify.py."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from functions.core import traits as trait_registry
from functions.core.device import Device, new_device_document, parse_device
from functions.core.schema import errors as schema_errors
from tools import certify
from tools.certify import Check, plan_command

DEMO_DEVICES = Path(__file__).resolve().parents[2] / "tools" / "demo" / "devices.json"


def synced(device_id: str, document: dict[str, Any], state: dict[str, Any] | None = None) -> Device:
    """The device as certify sees it: its SYNC object, and the states QUERY answers."""
    device = parse_device(device_id, {**document, "state": state if state is not None else document["state"]})
    view = device.sync_view()
    return Device(device_id, {k: v for k, v in view.items() if k != "id"}, device.query_states())


def plans_of(device: Device, include_destructive: bool = False) -> dict[str, certify.Plan]:
    now = int(time.time() * 1000)
    return {
        command.rsplit(".", 1)[-1]: plan_command(device, trait, command, now, include_destructive)
        for trait in device.traits
        for command in trait.commands
    }


def test_every_demo_command_gets_params_that_change_its_state() -> None:
    for submitted in json.loads(DEMO_DEVICES.read_text()):
        device = synced(submitted["id"], new_device_document(submitted["id"], submitted))
        for command, plan in plans_of(device).items():
            assert plan.params is not None, f"{device.id} {command}: {plan.why}"
            assert plan.expected, f"{device.id} {command}: the params change nothing"
            spec = trait_registry.for_command(f"action.devices.commands.{command}")
            assert spec is not None
            assert not schema_errors(spec.commands[f"action.devices.commands.{command}"].params_schema, plan.params)
    lamp = synced("lamp", new_device_document("lamp", json.loads(DEMO_DEVICES.read_text())[0]))
    assert plans_of(lamp)["OnOff"].params == {"on": True}, "the lamp is off: it is turned on"
    assert plans_of(lamp)["BrightnessAbsolute"].expected == {"brightness": 61}, "a small change first"


def test_destructive_and_query_only_commands_are_left_alone() -> None:
    reboot = {
        "type": "action.devices.types.SWITCH",
        "traits": ["action.devices.traits.OnOff", "action.devices.traits.Reboot"],
        "name": {"name": "r"},
        "willReportState": True,
    }
    device = synced("router", new_device_document("router", reboot))
    assert "--all" in plans_of(device)["Reboot"].why
    assert plans_of(device, include_destructive=True)["Reboot"].params == {}
    plug = {"type": "action.devices.types.OUTLET", "traits": ["action.devices.traits.OnOff"], "name": {"name": "p"},
            "willReportState": True, "attributes": {"queryOnlyOnOff": True}}  # fmt: skip
    assert "query-only" in plans_of(synced("plug", new_device_document("plug", plug)))["OnOff"].why


def test_the_params_of_every_trait_are_valid_for_google_s_example_devices() -> None:
    """Devices built from Google's schema examples (tests/trait_examples.py): whatever params are generated pass
    the command's params schema and run on the trait; most commands get some."""
    from tests import trait_examples

    planned = skipped = 0
    for trait in trait_registry.all_traits():
        for attributes in trait_examples.attribute_examples(trait):
            document = new_device_document("d1", trait_examples.device_document(trait, attributes))
            for state in trait_examples.starting_states(trait, attributes):
                device = synced("d1", document, state)
                for command, plan in plans_of(device, include_destructive=True).items():
                    if plan.params is None:
                        skipped += 1
                        continue
                    planned += 1
                    spec = trait.commands[f"action.devices.commands.{command}"]
                    assert not schema_errors(spec.params_schema, plan.params), (trait.name, command, plan.params)
    assert planned > 3 * skipped, (planned, skipped)


def test_junit_and_table_name_each_failed_check() -> None:
    checks = [
        Check("SYNC", "SYNC", "sync valid", seconds=0.5),
        Check("lamp", "OnOff", "execute", params={"on": True}),
        Check("lamp", "OnOff", "homegraph state", certify.FAIL, 'HomeGraph does not hold {"on": true}'),
        Check("lamp", "Reboot", "execute", certify.SKIP, "destructive"),
    ]
    suite = ET.fromstring(certify.junit(checks))  # noqa: S314 - our own XML
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    [failed] = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert (failed.get("classname"), failed.get("name")) == ("certify.lamp", "OnOff: homegraph state")
    shown = certify.table(checks)
    assert 'FAIL lamp OnOff: homegraph state: HomeGraph does not hold {"on": true}' in shown
    assert "4 checks: 2 passed, 1 failed, 1 skipped" in shown


@pytest.mark.parametrize(("a", "b", "same"), [(21, 21.0, True), (True, 1, False), ({"x": [1.0]}, {"x": [1]}, True)])
def test_states_compare_as_json_values(a: Any, b: Any, same: bool) -> None:
    assert certify._same(a, b) is same
