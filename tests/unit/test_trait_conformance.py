"""Every registered trait against Google's schemas, without I/O.

For each trait: every attributes example of the schema registers a device; every params example of every
command executes on a device whose attributes allow it, and the resulting states validate against the trait's
states schema. Invalid attributes are refused with a message naming the trait.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.core import traits
from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import CommandError, InvalidDevice
from functions.core.traits.base import CommandContext, Effect, Trait
from tests.schema_oracle import oracle
from tests.trait_examples import attribute_examples, device_document, params_examples, starting_states

TRAIT_NAMES = [t.name for t in traits.all_traits()]


@pytest.mark.parametrize("name", TRAIT_NAMES)
def test_every_attributes_example_registers(name: str) -> None:
    trait = traits.get(name)
    assert trait is not None
    for attributes in attribute_examples(trait):
        document = new_device_document("d1", device_document(trait, attributes))
        device = parse_device("d1", document)
        states = device.query_states()
        oracle().assert_states(device.trait_names, states, f"initial state of {name} with {attributes}")
        oracle().assert_sync_device(device.sync_view())


@pytest.mark.parametrize("name", TRAIT_NAMES)
def test_a_single_switch_is_enough_and_sync_spells_out_both(name: str) -> None:
    trait = traits.get(name)
    assert trait is not None
    for switch in (trait.command_only_attribute, trait.query_only_attribute):
        if switch is None:
            continue
        base = next(iter(attribute_examples(trait)))
        others = {k: v for k, v in base.items() if k not in (trait.command_only_attribute, trait.query_only_attribute)}
        device = parse_device("d1", new_device_document("d1", device_document(trait, {**others, switch: True})))
        view = device.sync_view()
        oracle().assert_sync_device(view)
        assert view["attributes"][switch] is True


@pytest.mark.parametrize("name", TRAIT_NAMES)
def test_attributes_of_the_wrong_type_are_refused_naming_the_trait(name: str) -> None:
    trait = traits.get(name)
    assert trait is not None
    for key in sorted(trait.attribute_keys()):
        bad = {key: {"not": "what the schema wants"}}
        with pytest.raises(InvalidDevice, match=rf"\({name}\)"):
            parse_device("d1", device_document(trait, bad))


def run(trait: Trait, device: Device, command: str, params: dict[str, Any]) -> Effect:
    # As in a real request, Google's followUpToken travels among the params but is not one of them.
    ctx = CommandContext(
        device_id=device.id,
        command=command,
        params={k: v for k, v in params.items() if k != "followUpToken"},
        follow_up_token=params.get("followUpToken"),
        attributes=device.attributes,
        state=device.state,
        now_ms=1_700_000_000_000,
        custom_data=device.definition.get("customData") or {},
    )
    return trait.execute(ctx)


@pytest.mark.parametrize("name", TRAIT_NAMES)
def test_every_params_example_executes(name: str) -> None:
    trait = traits.get(name)
    assert trait is not None
    schemas = oracle().trait(name)
    assert set(schemas.commands) == set(trait.commands), "commands differ from Google's"
    for command_name in schemas.commands:
        for params in params_examples(trait, command_name):
            outcomes = []
            for attributes in attribute_examples(trait):
                for device in starting_devices(trait, attributes):
                    try:
                        effect = run(trait, device, command_name, params)
                    except CommandError as error:
                        outcomes.append(error.code)
                        continue
                    after = device.with_state(effect.state)
                    parse_device("d1", {**device_document(trait, attributes), "state": dict(after.state)})
                    oracle().assert_states(after.trait_names, after.query_states(), f"{command_name} {params}")
                    outcomes.append("ok")
            assert "ok" in outcomes, f"{command_name} {params} ran on no attributes example: {outcomes}"


def starting_devices(trait: Trait, attributes: dict[str, Any]) -> list[Device]:
    """A freshly registered device, then the same device in each of Google's example states that suit it."""
    document = new_device_document("d1", device_document(trait, attributes))
    return [parse_device("d1", {**document, "state": state}) for state in starting_states(trait, attributes)]
