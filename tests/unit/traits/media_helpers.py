"""Small helpers shared by the tests of the media traits (AppSelector, CameraStream, Channel, InputSelector,
MediaState, Scene, TransportControl): register a device, run one command as the fulfillment would, and check
the outcome against Google's schemas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core import traits
from functions.core.device import Device, new_device_document, parse_device
from functions.core.device_types import DEVICE_TYPES
from functions.core.traits.base import COMMAND_PREFIX, CommandContext, Effect
from tests.schema_oracle import oracle

NOW_MS = 1_700_000_000_000


@dataclass(frozen=True)
class ContextWithCustomData(CommandContext):
    """A CommandContext carrying the device's customData, as proposed for the shared CommandContext."""

    custom_data: Mapping[str, Any] = field(default_factory=dict)


def device_type_for(trait_names: list[str]) -> str:
    """The first device type that requires no trait beyond these, so a test needs no other trait module."""
    return next(t.name for t in DEVICE_TYPES.values() if set(t.required_traits) <= set(trait_names))


def register(
    trait_names: list[str],
    attributes: Mapping[str, Any],
    state: Mapping[str, Any] | None = None,
    custom_data: Mapping[str, Any] | None = None,
) -> Device:
    """A device registered as `devices add` would: validated, with the traits' initial states filled in."""
    document: dict[str, Any] = {
        "type": device_type_for(trait_names),
        "traits": [f"action.devices.traits.{name}" for name in trait_names],
        "name": {"name": "living room tv"},
        "willReportState": True,
        "attributes": dict(attributes),
    }
    if state is not None:
        document["state"] = dict(state)
    if custom_data is not None:
        document["customData"] = dict(custom_data)
    return parse_device("d1", new_device_document("d1", document))


def run(
    device: Device,
    command: str,
    params: Mapping[str, Any] | None = None,
    *,
    language: str = "en",
    custom_data: Mapping[str, Any] | None = None,
) -> Effect:
    """Runs `action.devices.commands.<command>` through the trait that owns it, on the device's current state."""
    full = COMMAND_PREFIX + command
    trait = traits.for_command(full)
    assert trait is not None, f"no trait handles {full}"
    base: dict[str, Any] = {
        "device_id": device.id,
        "command": full,
        "params": dict(params or {}),
        "attributes": device.attributes,
        "state": device.state,
        "now_ms": NOW_MS,
        "language": language,
    }
    ctx = CommandContext(**base) if custom_data is None else ContextWithCustomData(**base, custom_data=custom_data)
    return trait.execute(ctx)


def apply(device: Device, effect: Effect) -> Device:
    """The device after `effect`, checked to be storable by us and valid for Google."""
    after = device.with_state(effect.state)
    parse_device(device.id, {**device.definition, "state": dict(after.state)})
    oracle().assert_states(after.trait_names, after.query_states(), "state after the command")
    return after
