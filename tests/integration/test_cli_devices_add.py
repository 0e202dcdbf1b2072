"""`python -m functions devices add` as operators run it, on the Firestore emulator: refusals of attributes Google's
schema refuses (naming the trait and field, nothing written), and every device type of the schema accepted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from functions.core import traits
from functions.core.traits.base import Trait
from tests.integration.cli_runner import run_cli, run_cli_many
from tests.integration.conftest import Google
from tests.schema_oracle import oracle
from tests.trait_examples import attribute_examples, device_document
from tools.google import sync_request

pytestmark = pytest.mark.emulator

# Values of the wrong JSON type for most attributes; the first one Google's schema refuses is used.
WRONG_VALUES: tuple[Any, ...] = ({"not": "what the schema wants"}, "not what the schema wants", -1_000_000, [])


def wrong_value(trait: Trait, key: str) -> Any:
    """A value of `key` that Google's attributes schema refuses on an otherwise valid device of the trait.

    An attribute that Google documents but the 2021 schema lacks (cameraStreamNeedDrmEncryption) gets a value of
    the wrong type for our own schema.
    """
    schema = oracle().trait(trait.name).attributes
    assert schema is not None
    if key not in schema.get("properties", {}):
        return WRONG_VALUES[0]
    base = attribute_examples(trait)[0]
    assert oracle().problems(schema, base) == [], f"{trait.name}: the base example must be valid"
    for value in WRONG_VALUES:
        if oracle().problems(schema, {**base, key: value}):
            return value
    raise AssertionError(f"no wrong value found for {trait.name}.{key}")


def all_devices(firestore_db: Any) -> list[str]:
    return [snap.reference.path for snap in firestore_db.collection_group("devices").stream()]


def test_invalid_attributes_of_every_trait_are_refused_naming_trait_and_field(firestore_db: Any) -> None:
    """One run per trait: a valid device, then one device per attribute with a value Google's schema refuses."""
    runs: list[tuple[list[str], str]] = []
    expectations: list[tuple[str, list[tuple[str, str]]]] = []
    for trait in traits.all_traits():
        keys = sorted(trait.attribute_keys())
        if not keys:
            continue
        base = attribute_examples(trait)[0]
        submitted = [{**device_document(trait, base), "id": f"{trait.name}-good"}]
        for key in keys:
            wrong = {**device_document(trait, {**base, key: wrong_value(trait, key)}), "id": f"{trait.name}-{key}"}
            submitted.append(wrong)
        runs.append((["devices", "add", "--user", f"op-{trait.name}", "--file", "-"], json.dumps(submitted)))
        expectations.append((trait.name, [(f"{trait.name}-{key}", key) for key in keys]))
    results = run_cli_many(runs)
    failures = []
    for (name, wrong_keys), done in zip(expectations, results, strict=True):
        if done.code != 1 or done.stdout.strip() or "nothing written" not in done.stderr:
            failures.append(f"{name}: exit {done.code}, stdout {done.stdout!r}, stderr {done.stderr.strip()!r}")
            continue
        lines = done.stderr.splitlines()
        for device_id, key in wrong_keys:
            line = next((line for line in lines if f"device {device_id!r}" in line), "")
            if f"({name})" not in line or key not in line:
                failures.append(f"{name}.{key}: not named in {done.stderr.strip()!r}")
        if any(f"{name}-good" in line for line in lines):
            failures.append(f"{name}: the valid device was refused too")
    assert not failures, "\n".join(failures)
    assert len(expectations) == len([t for t in traits.all_traits() if t.attribute_keys()])
    assert all_devices(firestore_db) == []


def test_traits_without_attributes_refuse_unknown_ones_naming_the_field(firestore_db: Any) -> None:
    bare = [t for t in traits.all_traits() if not t.attribute_keys()]
    assert bare, "some traits have no attributes at all"
    submitted = [{**device_document(t, {"colour": "green"}), "id": f"{t.name}-bad"} for t in bare]
    done = run_cli("devices", "add", "--user", "op", "--file", "-", stdin=json.dumps(submitted))
    assert done.code == 1
    for trait in bare:
        assert f"device '{trait.name}-bad': attributes.colour: not an attribute of any of this device's traits" in (
            done.stderr
        )
    assert all_devices(firestore_db) == []


def test_usage_errors_and_unreadable_files_write_nothing(firestore_db: Any) -> None:
    assert run_cli("devices", "add", "--user", "op").code == 2
    done = run_cli("devices", "add", "--user", "op", "--file", "-", stdin="{not json")
    assert done.code == 1
    assert "not valid JSON" in done.stderr
    done = run_cli("devices", "add", "--user", "op", "--file", "/nonexistent/devices.json")
    assert done.code == 1
    assert "cannot read" in done.stderr
    assert all_devices(firestore_db) == []


def device_for_type(name: str, trait_names: list[str], device_id: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    custom_data: dict[str, Any] = {}
    for trait_name in trait_names:
        trait = traits.get(trait_name)
        assert trait is not None, f"{name} needs {trait_name}, which is not implemented"
        document = device_document(trait, attribute_examples(trait)[0])
        attributes.update(document["attributes"])
        custom_data.update(document.get("customData", {}))
    device = {
        "id": device_id,
        "type": name,
        "traits": [f"action.devices.traits.{t}" for t in trait_names],
        "name": {"name": f"{name.rsplit('.', 1)[-1].title()} {device_id}"},
        "willReportState": True,
        "attributes": copy.deepcopy(attributes),
    }
    if custom_data:
        device["customData"] = custom_data
    return device


def test_every_device_type_is_accepted_with_its_required_and_recommended_traits(
    firestore_db: Any, google: Callable[[str], Google]
) -> None:
    types = oracle().device_types()
    assert len(types) == 79
    devices = []
    for name, meta in types.items():
        required = list((meta.get("traits") or {}).get("required") or [])
        recommended = list((meta.get("traits") or {}).get("recommended") or [])
        short = name.rsplit(".", 1)[-1].lower()
        devices.append(device_for_type(name, required or recommended[:1] or ["OnOff"], f"{short}-required"))
        devices.append(device_for_type(name, list(dict.fromkeys(required + recommended)), f"{short}-recommended"))

    done = run_cli("devices", "add", "--user", "maker", "--create", "--file", "-", stdin=json.dumps(devices))
    assert done.code == 0, done.stderr
    assert sorted(done.json()["added"]) == sorted(d["id"] for d in devices)

    listed = run_cli("devices", "list", "--user", "maker")
    assert listed.code == 0, listed.stderr
    assert sorted(d["id"] for d in listed.json()) == sorted(d["id"] for d in devices)

    status, body = google("maker").post(sync_request())
    assert status == 200
    oracle().assert_response("sync", body)
    synced = {d["id"]: d for d in body["payload"]["devices"]}
    assert set(synced) == {d["id"] for d in devices}
    for device in devices:
        assert synced[device["id"]]["type"] == device["type"]
        assert synced[device["id"]]["traits"] == device["traits"]


def test_a_type_without_its_required_trait_is_refused(firestore_db: Any) -> None:
    lamp = {
        "id": "lamp",
        "type": "action.devices.types.LIGHT",
        "traits": ["action.devices.traits.Brightness"],
        "name": {"name": "Lamp"},
        "willReportState": True,
    }
    done = run_cli("devices", "add", "--user", "maker", "--file", "-", stdin=json.dumps(lamp))
    assert done.code == 1
    assert "action.devices.types.LIGHT requires OnOff" in done.stderr
    assert all_devices(firestore_db) == []
