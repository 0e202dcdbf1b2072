"""Google's official smart-home JSON schemas as the conformance oracle of the tests.

The schemas are read from SMART_HOME_SCHEMA_DIR (default ../shared/smart-home-schema beside the checkout),
never copied into the project. Tests that need them call `oracle()`, which skips with a clear reason where the
directory is absent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCHEMA_DIR = REPO_ROOT.parent / "shared" / "smart-home-schema"

# Google's documentation adds to the 2021 schemas; where it does, the addition is named here with its source.
# challengeNeeded: https://developers.google.com/assistant/smarthome/develop/secondary-user-verification
EXECUTE_RESULT_EXTENSIONS = {
    "challengeNeeded": {
        "type": "object",
        "properties": {"type": {"enum": ["ackNeeded", "pinNeeded", "challengeFailedPinNeeded"]}},
        "required": ["type"],
    }
}
# The same page: Google sends the user's answer to a challenge beside the command it answers (an execution item
# holds `challenge` with `ack` or `pin`); the 2021 request schema allows no field there but command and params.
# (followUpToken travels in params, which the schema leaves open.)
EXECUTE_REQUEST_EXTENSIONS = {
    "challenge": {
        "type": "object",
        "properties": {"ack": {"type": "boolean"}, "pin": {"type": "string"}},
        "minProperties": 1,
        "additionalProperties": False,
    }
}
# Matter deduplication: a device that is also on Matter sends these three strings in SYNC (with roomHint), so
# that Google shows it once. The 2021 schemas forbid any other field of a SYNC device (additionalProperties: false);
# exactly these three are allowed in addition. https://developers.home.google.com/matter/device-deduplication
SYNC_DEVICE_EXTENSIONS = {
    "matterUniqueId": {"type": "string", "minLength": 1, "maxLength": 32},
    "matterOriginalVendorId": {"type": "string", "pattern": "^0x[0-9A-Fa-f]{1,4}$"},
    "matterOriginalProductId": {"type": "string", "pattern": "^0x[0-9A-Fa-f]{1,4}$"},
}
# Global (request-level) error codes of Google's fulfillment documentation, beside the device codes of
# platform/errors.schema.json.
GLOBAL_ERROR_CODES = frozenset(
    {
        "authExpired",
        "authFailure",
        "deviceOffline",
        "timeout",
        "deviceTurnedOff",
        "deviceNotFound",
        "valueOutOfRange",
        "notSupported",
        "protocolError",
        "unknownError",
        "challengeNeeded",
    }
)


def schema_dir() -> Path:
    return Path(os.environ.get("SMART_HOME_SCHEMA_DIR", DEFAULT_SCHEMA_DIR))


@dataclass
class CommandSchemas:
    name: str
    params: dict[str, Any] | None = None
    errors: dict[str, Any] | None = None
    followup: dict[str, Any] | None = None
    results: dict[str, Any] | None = None


@dataclass
class TraitSchemas:
    name: str  # full name
    short: str
    attributes: dict[str, Any] | None = None
    states: dict[str, Any] | None = None
    notifications: dict[str, Any] | None = None
    commands: dict[str, CommandSchemas] = field(default_factory=dict)


class Oracle:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _load(self, folder: Path, ref: dict[str, Any] | None) -> dict[str, Any] | None:
        if not ref:
            return None
        return json.loads((folder / ref["$ref"]).read_text())

    @cache  # noqa: B019 - one oracle per session
    def traits(self) -> dict[str, TraitSchemas]:
        found: dict[str, TraitSchemas] = {}
        for index in sorted(self.root.glob("traits/*/index.yaml")):
            meta = yaml.safe_load(index.read_text())
            folder = index.parent
            trait = TraitSchemas(
                name=meta["name"],
                short=meta["shortname"],
                attributes=self._load(folder, meta.get("attributes")),
                states=self._load(folder, meta.get("states")),
                notifications=self._load(folder, meta.get("notifications")),
            )
            for command_name, spec in (meta.get("commands") or {}).items():
                trait.commands[command_name] = CommandSchemas(
                    name=command_name,
                    params=self._load(folder, spec.get("params")),
                    errors=self._load(folder, spec.get("errors")),
                    followup=self._load(folder, spec.get("followup")),
                    results=self._load(folder, spec.get("results")),
                )
            found[trait.short] = trait
        return found

    def trait(self, short_name: str) -> TraitSchemas:
        return self.traits()[short_name]

    @cache  # noqa: B019
    def published_intent(self, intent: str, part: str) -> dict[str, Any]:
        """Google's schema as published, without the documented additions."""
        schema: dict[str, Any] = json.loads(
            (self.root / "intents" / intent / f"{intent}.{part}.schema.json").read_text()
        )
        return schema

    @cache  # noqa: B019
    def intent(self, intent: str, part: str) -> dict[str, Any]:
        """`intent` is sync|query|execute|disconnect, `part` request|response; with the documented additions."""
        schema = self.published_intent(intent, part)
        if intent == "execute" and part == "request":
            schema = json.loads(json.dumps(schema))
            commands = schema["properties"]["inputs"]["items"]["properties"]["payload"]["properties"]["commands"]
            commands["items"]["properties"]["execution"]["items"]["properties"].update(EXECUTE_REQUEST_EXTENSIONS)
        if intent == "execute" and part == "response":
            schema = json.loads(json.dumps(schema))
            item = schema["properties"]["payload"]["properties"]["commands"]["items"]
            item["properties"].update(EXECUTE_RESULT_EXTENSIONS)
        if intent == "sync" and part == "response":
            schema = json.loads(json.dumps(schema))
            device = schema["properties"]["payload"]["properties"]["devices"]["items"]
            device["properties"].update(SYNC_DEVICE_EXTENSIONS)
        return schema

    @cache  # noqa: B019
    def error_codes(self) -> frozenset[str]:
        device_codes = json.loads((self.root / "platform" / "errors.schema.json").read_text())["enum"]
        return frozenset(device_codes) | GLOBAL_ERROR_CODES

    @cache  # noqa: B019
    def device_types(self) -> dict[str, dict[str, Any]]:
        return {
            meta["name"]: meta
            for meta in (yaml.safe_load(p.read_text()) for p in sorted(self.root.glob("types/*/index.yaml")))
        }

    @staticmethod
    def examples(schema: dict[str, Any] | None) -> list[Any]:
        """The schema's examples without their `$comment`s."""
        if not schema:
            return []
        return [
            {k: v for k, v in example.items() if k != "$comment"} if isinstance(example, dict) else example
            for example in schema.get("examples", [])
        ]

    @staticmethod
    def problems(schema: dict[str, Any], value: Any) -> list[str]:
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in Draft7Validator(schema).iter_errors(value)
        ]

    def assert_valid(self, schema: dict[str, Any], value: Any, what: str = "value") -> None:
        problems = self.problems(schema, value)
        assert not problems, (
            f"{what} breaks Google's schema:\n  " + "\n  ".join(problems) + f"\n{json.dumps(value)[:2000]}"
        )

    def assert_response(self, intent: str, response: dict[str, Any]) -> None:
        """Validates an intent response, its error codes, and every device's states against its traits."""
        self.assert_valid(self.intent(intent, "response"), response, f"{intent.upper()} response")
        payload = response["payload"]
        codes = [payload.get("errorCode")]
        if intent == "query":
            codes += [d.get("errorCode") for d in payload.get("devices", {}).values()]
        if intent == "execute":
            codes += [c.get("errorCode") for c in payload.get("commands", [])]
        for code in codes:
            assert code is None or code in self.error_codes(), f"{code!r} is not one of Google's error codes"
        if intent == "sync":
            for device in payload.get("devices", []):
                self.assert_sync_device(device)

    def assert_sync_device(self, device: dict[str, Any]) -> None:
        assert device["type"] in self.device_types(), f"unknown type {device['type']}"
        matter = [name for name in SYNC_DEVICE_EXTENSIONS if name in device]
        if matter:
            # Google deduplicates by all three, in a room (the page named at SYNC_DEVICE_EXTENSIONS).
            assert len(matter) == len(SYNC_DEVICE_EXTENSIONS), f"{device['id']}: only {matter} of the Matter fields"
            assert device.get("roomHint"), f"{device['id']}: Matter fields without roomHint"
        for trait_name in device["traits"]:
            short = trait_name.rsplit(".", 1)[-1]
            schemas = self.trait(short)
            if schemas.attributes is not None:
                self.assert_valid(
                    schemas.attributes, device.get("attributes", {}), f"{short} attributes of {device['id']}"
                )

    def assert_states(self, trait_names: list[str], states: dict[str, Any], what: str = "states") -> None:
        """Each trait's share of `states` validates against that trait's states schema.

        A trait with no share at all (command-only on this device, or no states) is not checked: Google's states
        schemas list what a QUERY must hold when the trait reports state.
        """
        for trait_name in trait_names:
            schemas = self.trait(trait_name.rsplit(".", 1)[-1])
            if schemas.states is None:
                continue
            keys = _state_keys(schemas.states)
            own = {k: v for k, v in states.items() if k in keys}
            if own:
                self.assert_valid(schemas.states, own, f"{what} of {trait_name}")

    def follow_up_schema(self, trait_short: str) -> dict[str, Any]:
        """The follow-up response schema of the trait's command that has one (LockUnlock, OpenClose, ...)."""
        found = [c.followup for c in self.trait(trait_short).commands.values() if c.followup is not None]
        assert found, f"{trait_short} has no follow-up response in Google's schemas"
        return found[0]

    def assert_report(self, body: dict[str, Any], traits_of: dict[str, list[str]]) -> None:
        """Validates a reportStateAndNotification body: every device's states against its traits' states schemas
        (and no key outside them but `online`), every notification against its trait's notifications schema and
        every follow-up response against the command's follow-up schema. `traits_of`: device id -> trait names."""
        assert body.get("requestId"), "a report needs a requestId"
        assert body.get("agentUserId"), "a report needs the agentUserId"
        devices = body["payload"]["devices"]
        for device_id, states in devices.get("states", {}).items():
            traits = traits_of[device_id]
            self.assert_states(traits, states, f"reported states of {device_id}")
            known = {"online"}.union(*(_state_keys(self.trait(t.rsplit(".", 1)[-1]).states or {}) for t in traits))
            assert set(states) <= known, f"{device_id} reports keys of no trait: {sorted(set(states) - known)}"
        notifications = devices.get("notifications", {})
        if notifications:
            assert body.get("eventId"), "notifications need an eventId"
        for device_id, by_trait in notifications.items():
            shorts = {t.rsplit(".", 1)[-1] for t in traits_of[device_id]}
            for trait, payload in by_trait.items():
                assert trait in shorts, f"{device_id} has no trait {trait}"
                if "followUpResponse" in payload:
                    schema = self.follow_up_schema(trait)
                else:
                    notifications_schema = self.trait(trait).notifications
                    assert notifications_schema is not None, f"{trait} has no notifications in Google's schemas"
                    schema = notifications_schema
                self.assert_valid(schema, {trait: payload}, f"{trait} notification of {device_id}")


def _state_keys(schema: dict[str, Any]) -> set[str]:
    """Top-level keys a states schema defines, including those in oneOf/anyOf/allOf branches (OpenClose, ...)."""
    keys = set(schema.get("properties", {}))
    for combinator in ("oneOf", "anyOf", "allOf"):
        for branch in schema.get(combinator, []):
            keys |= _state_keys(branch)
    return keys


def oracle() -> Oracle:
    root = schema_dir()
    if not (root / "traits").is_dir():
        pytest.skip(f"Google's smart-home schemas not found at {root}; set SMART_HOME_SCHEMA_DIR")
    return _oracle(root)


@cache
def _oracle(root: Path) -> Oracle:
    return Oracle(root)
