"""Devices built from Google's schema examples, shared by the domain conformance test and the one through the
real handler: which attributes, customData and starting states let every example command run.
"""

from __future__ import annotations

import copy
from typing import Any

from functions.core.device import new_device_document, parse_device
from functions.core.device_types import DEVICE_TYPES
from functions.core.errors import InvalidDevice
from functions.core.traits.base import Trait
from tests.schema_oracle import oracle

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


def device_type_for(trait: Trait) -> str:
    """A device type that needs no trait beyond `trait`."""
    return next(t.name for t in DEVICE_TYPES.values() if set(t.required_traits) <= {trait.name})


def device_document(trait: Trait, attributes: dict[str, Any]) -> dict[str, Any]:
    """A device with `trait` alone, as `devices add` takes it (without its id)."""
    return {
        "type": device_type_for(trait),
        "traits": [trait.full_name()],
        "name": {"name": f"{trait.name} test device"},
        "willReportState": True,
        "attributes": copy.deepcopy(attributes),
        **({"customData": copy.deepcopy(CUSTOM_DATA[trait.name])} if trait.name in CUSTOM_DATA else {}),
    }


def schema_attribute_examples(trait: Trait) -> list[dict[str, Any]]:
    """The attributes examples of Google's schema for this trait."""
    return oracle().examples(oracle().trait(trait.name).attributes)


def attribute_examples(trait: Trait) -> list[dict[str, Any]]:
    """Google's attributes examples (or no attributes where it has none), then ours."""
    return (schema_attribute_examples(trait) or [{}]) + EXTRA_ATTRIBUTES.get(trait.name, [])


def starting_states(trait: Trait, attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """The state of a freshly registered device, then that state updated with each of Google's states examples
    that suits the device: some commands need a state to act on (TimerPause needs a running timer)."""
    document = new_device_document("d1", device_document(trait, attributes))
    states = [dict(document["state"])]
    for example in oracle().examples(oracle().trait(trait.name).states):
        state = {**document["state"], **example}
        try:
            parse_device("d1", {**document, "state": state})
        except InvalidDevice:
            continue  # a state this device cannot be in (a timer longer than its limit, ...)
        states.append(state)
    return states


def params_examples(trait: Trait, command: str) -> list[dict[str, Any]]:
    """Google's params examples of a command, or no params where it has none."""
    return oracle().examples(oracle().trait(trait.name).commands[command].params) or [{}]
