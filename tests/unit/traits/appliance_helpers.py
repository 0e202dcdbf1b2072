"""Running one trait's commands on a registered device, as the fulfillment would, for the appliance traits'
tests (Timer, Cook, Dispense, Fill, Modes, Toggles, StatusReport)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from functions.core import traits
from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import CommandError
from functions.core.traits.base import CommandContext, Effect, Trait
from tests.schema_oracle import oracle

NOW_MS = 1_700_000_000_000
# A device type that needs no trait besides the one under test.
NEUTRAL_TYPE = "action.devices.types.WATERSOFTENER"


@dataclass
class Outcome:
    effect: Effect
    device: Device  # the device after the command, validated as a stored document would be

    @property
    def reported(self) -> dict[str, Any]:
        return self.device.query_states()


class Harness:
    def __init__(self, trait_name: str) -> None:
        found = traits.get(trait_name)
        assert found is not None
        self.trait: Trait = found
        self.name = trait_name

    def register(self, attributes: dict[str, Any], state: dict[str, Any] | None = None) -> Device:
        document: dict[str, Any] = {
            "type": NEUTRAL_TYPE,
            "traits": [self.trait.full_name()],
            "name": {"name": f"{self.name} device"},
            "willReportState": True,
            "attributes": copy.deepcopy(attributes),
        }
        if state is not None:
            document["state"] = copy.deepcopy(state)
        device = parse_device("d1", new_device_document("d1", document))
        self.assert_google_states(device)
        return device

    def run(
        self,
        device: Device,
        command: str,
        params: dict[str, Any] | None = None,
        now_ms: int = NOW_MS,
        language: str = "en",
    ) -> Outcome:
        ctx = CommandContext(
            device_id=device.id,
            command=f"action.devices.commands.{command}",
            params=params or {},
            attributes=device.attributes,
            state=device.state,
            now_ms=now_ms,
            language=language,
        )
        effect = self.trait.execute(ctx)
        after = device.with_state(effect.state)
        # What the store would accept, and what Google would get.
        stored = parse_device(device.id, {**after.definition, "state": dict(after.state)})
        self.assert_google_states(stored)
        return Outcome(effect, stored)

    def refused(self, device: Device, command: str, params: dict[str, Any] | None = None, **options: Any) -> str:
        """The error code of a command that must fail; the code must be one Google knows for the command."""
        with pytest.raises(CommandError) as raised:
            self.run(device, command, params, **options)
        code = raised.value.code
        specific = oracle().trait(self.name).commands[f"action.devices.commands.{command}"].errors
        allowed = set(oracle().error_codes()) | set((specific or {}).get("enum", ()))
        assert code in allowed, f"{code} is not one of Google's error codes"
        return code

    def assert_google_states(self, device: Device) -> None:
        """Google's states schema, unless the device reports none for this trait (command-only)."""
        if self.trait.state_keys(device.attributes):
            oracle().assert_states(device.trait_names, device.query_states(), f"{self.name} states")
