"""Run one trait's commands on a single-trait device, checking every resulting state against Google's schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import traits
from functions.core.device import Device, new_device_document, parse_device
from functions.core.traits.base import COMMAND_PREFIX, CommandContext, Effect
from tests.schema_oracle import oracle

NOW_MS = 1_700_000_000_000
# A type that requires no trait, so that one trait can be tested alone.
DEVICE_TYPE = "action.devices.types.BATHTUB"
# Traits whose "nothing to report" is an empty state in Google's current documentation, where the 2021 schema
# still requires a key: LightEffects with no effect running is `{}` in
# https://developers.home.google.com/cloud-to-cloud/traits/lighteffects
EMPTY_STATE_DOCUMENTED = frozenset({"LightEffects"})


def definition(trait: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": DEVICE_TYPE,
        "traits": [f"action.devices.traits.{trait}"],
        "name": {"name": f"{trait} device"},
        "willReportState": True,
        "attributes": dict(attributes),
    }


def device(trait: str, attributes: Mapping[str, Any], state: Mapping[str, Any] | None = None) -> Device:
    """A registered device; `state` is merged over the trait's initial state."""
    document = definition(trait, attributes)
    if state is not None:
        document["state"] = dict(state)
    registered = parse_device("d1", new_device_document("d1", document))
    assert_google_states(registered)
    return registered


def assert_google_states(dev: Device) -> None:
    """The device's reported states are valid for Google (the whole set: the device has one trait)."""
    trait = dev.traits[0]
    states = dev.query_states()
    if not trait.state_keys(dev.attributes):
        assert states == {}, "a command-only trait reports nothing"
        return
    if not states and trait.name in EMPTY_STATE_DOCUMENTED:
        return
    schema = oracle().trait(trait.name).states
    assert schema is not None
    oracle().assert_valid(schema, states, f"{trait.name} states")


def execute(
    dev: Device, command: str, params: Mapping[str, Any], language: str = "en", token: str | None = None
) -> tuple[Device, Effect]:
    """Runs a command; returns the device after it (stored state checked by us, reported state by Google)."""
    trait = traits.for_command(COMMAND_PREFIX + command)
    assert trait is not None, command
    effect = trait.execute(
        CommandContext(
            device_id=dev.id,
            command=COMMAND_PREFIX + command,
            params=params,
            attributes=dev.attributes,
            state=dev.state,
            now_ms=NOW_MS,
            follow_up_token=token,
            language=language,
        )
    )
    after = dev.with_state(effect.state)
    parse_device(dev.id, {**definition(trait.name, dev.attributes), "state": dict(after.state)})
    assert_google_states(after)
    return after, effect
