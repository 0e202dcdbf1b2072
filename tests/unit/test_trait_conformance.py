"""Every registered trait against Google's schemas, without I/O.

For each trait: every attributes example of the schema registers a device; every params example of every
command executes on a device whose attributes allow it, and the resulting states validate against the trait's
states schema. Invalid attributes are refused with a message naming the trait.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from functions.domain import traits
from functions.domain.device import Device, new_device_document, parse_device
from functions.domain.device_types import DEVICE_TYPES
from functions.domain.errors import CommandError, InvalidDevice
from functions.domain.traits.base import CommandContext, Effect, Trait
from tests.schema_oracle import oracle

TRAIT_NAMES = [t.name for t in traits.all_traits()]

# What Google's examples leave out for some commands to run: TransportControl's only attributes example lists 5 of
# its 10 commands, and a camera can answer GetCameraStream only with the stream addresses its customData gives.
EXTRA_ATTRIBUTES: dict[str, list[dict[str, Any]]] = {
    # Google's TemperatureSetting attribute examples lack heatcool, which its ThermostatSetMode and
    # ThermostatTemperatureSetRange examples need.
    "TemperatureSetting": [
        {"availableThermostatModes": ["off", "heat", "cool", "heatcool"], "thermostatTemperatureUnit": "C"}
    ],
    "TransportControl": [
        {
            "transportControlSupportedCommands": [
                "CAPTION_CONTROL",
                "NEXT",
                "PAUSE",
                "PREVIOUS",
                "RESUME",
                "SEEK_RELATIVE",
                "SEEK_TO_POSITION",
                "SET_REPEAT",
                "SHUFFLE",
                "STOP",
            ]
        }
    ],
}
CUSTOM_DATA: dict[str, dict[str, Any]] = {
    "CameraStream": {
        "cameraStream": {
            "accessUrls": {
                protocol: f"https://camera.example/live.{protocol}"
                for protocol in ("hls", "dash", "smooth_stream", "progressive_mp4")
            },
            "webrtc": {"signalingUrl": "https://camera.example/webrtc"},
        }
    },
}


def device_document(trait: Trait, attributes: dict[str, Any]) -> dict[str, Any]:
    """A device of a type that needs no trait beyond `trait`."""
    device_type = next(t.name for t in DEVICE_TYPES.values() if set(t.required_traits) <= {trait.name})
    return {
        "type": device_type,
        "traits": [trait.full_name()],
        "name": {"name": f"{trait.name} test device"},
        "willReportState": True,
        "attributes": copy.deepcopy(attributes),
        **({"customData": copy.deepcopy(CUSTOM_DATA[trait.name])} if trait.name in CUSTOM_DATA else {}),
    }


def attribute_examples(trait: Trait) -> list[dict[str, Any]]:
    schemas = oracle().trait(trait.name)
    return (oracle().examples(schemas.attributes) or [{}]) + EXTRA_ATTRIBUTES.get(trait.name, [])


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
    for command_name, command_schemas in schemas.commands.items():
        for params in oracle().examples(command_schemas.params) or [{}]:
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
    """A freshly registered device, then the same device in each state of Google's states examples that suits
    it: some commands need a state to act on (TimerPause needs a running timer)."""
    document = new_device_document("d1", device_document(trait, attributes))
    devices = [parse_device("d1", document)]
    for example in oracle().examples(oracle().trait(trait.name).states):
        state = {**document["state"], **example}
        try:
            devices.append(parse_device("d1", {**document, "state": state}))
        except InvalidDevice:
            continue  # a state this device cannot be in (a timer longer than its limit, ...)
    return devices
