"""ArmDisarm: levels by name and synonym, already armed / disarmed, cancelling within the exit allowance."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import CommandError, InvalidDevice
from functions.core.traits.armdisarm import ArmDisarm
from functions.core.traits.base import CommandContext
from tests.schema_oracle import oracle

TRAIT = ArmDisarm()
LEVELS = {
    "availableArmLevels": {
        "levels": [
            {
                "level_name": "L1",
                "level_values": [
                    {"level_synonym": ["home and guarding", "SL1"], "lang": "en"},
                    {"level_synonym": ["zuhause und bewachen"], "lang": "de"},
                ],
            },
            {
                "level_name": "L2",
                "level_values": [
                    {"level_synonym": ["away and guarding", "away"], "lang": "en"},
                    {"level_synonym": ["weg und bewachen"], "lang": "de"},
                ],
            },
        ],
        "ordered": True,
    }
}


def register(attributes: dict[str, Any], state: dict[str, Any] | None = None) -> Device:
    document: dict[str, Any] = {
        "type": "action.devices.types.SECURITYSYSTEM",
        "traits": ["action.devices.traits.ArmDisarm"],
        "name": {"name": "alarm"},
        "willReportState": True,
        "attributes": attributes,
    }
    if state is not None:
        document["state"] = state
    return parse_device("a1", new_device_document("a1", document))


def context(device: Device, params: dict[str, Any], language: str) -> CommandContext:
    command = "action.devices.commands.ArmDisarm"
    return CommandContext("a1", command, params, device.attributes, device.state, 0, language=language)


def after(device: Device, params: dict[str, Any], language: str = "en") -> dict[str, Any]:
    states = device.with_state(TRAIT.execute(context(device, params, language)).state).query_states()
    if device.attributes:
        oracle().assert_states(device.trait_names, states, f"ArmDisarm {params}")
    return states


def code_of(device: Device, params: dict[str, Any], language: str = "en") -> str:
    with pytest.raises(CommandError) as raised:
        TRAIT.execute(context(device, params, language))
    assert raised.value.code in oracle().error_codes()
    return raised.value.code


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("ArmDisarm")
    for example in oracle().examples(schemas.attributes):
        assert ArmDisarm.attribute_errors(example) == [], example
    for example in oracle().examples(schemas.states):
        assert ArmDisarm.state_errors(LEVELS, example) == [], example


def test_initial_state_is_disarmed_at_the_first_level() -> None:
    assert register(LEVELS).query_states() == {"isArmed": False, "currentArmLevel": "L1"}
    assert register({}).query_states() == {"isArmed": False}


def test_arming_without_a_level_rearms_at_the_current_level() -> None:
    device = register(LEVELS, {"isArmed": False, "currentArmLevel": "L2"})
    assert after(device, {"arm": True}) == {"isArmed": True, "currentArmLevel": "L2"}


@pytest.mark.parametrize(
    ("requested", "language", "level"),
    [
        ("L2", "en", "L2"),
        ("l2", "en", "L2"),
        ("away", "en", "L2"),
        ("Away And Guarding", "en-US", "L2"),
        ("weg und bewachen", "de", "L2"),
        ("SL1", "en", "L1"),
    ],
)
def test_levels_by_name_or_synonym_in_the_request_language(requested: str, language: str, level: str) -> None:
    states = after(register(LEVELS), {"arm": True, "armLevel": requested}, language)
    assert states == {"isArmed": True, "currentArmLevel": level}


def test_a_synonym_of_another_language_or_an_unknown_level_is_not_supported() -> None:
    assert code_of(register(LEVELS), {"arm": True, "armLevel": "weg und bewachen"}, "en") == "notSupported"
    assert code_of(register(LEVELS), {"arm": True, "armLevel": "L3"}) == "notSupported"
    assert code_of(register({}), {"arm": True, "armLevel": "L1"}) == "notSupported"


def test_changing_level_while_armed() -> None:
    armed = register(LEVELS, {"isArmed": True, "currentArmLevel": "L1"})
    assert after(armed, {"arm": True, "armLevel": "L2"}) == {"isArmed": True, "currentArmLevel": "L2"}


def test_already_armed_and_already_disarmed() -> None:
    armed = register(LEVELS, {"isArmed": True, "currentArmLevel": "L1"})
    assert code_of(armed, {"arm": True, "armLevel": "L1"}) == "alreadyArmed"
    assert code_of(armed, {"arm": True}) == "alreadyArmed"
    assert code_of(register(LEVELS), {"arm": False}) == "alreadyDisarmed"
    assert code_of(register({}, {"isArmed": True}), {"arm": True}) == "alreadyArmed"


def test_disarming_keeps_the_level_and_ends_an_exit_allowance() -> None:
    arming = register(LEVELS, {"isArmed": True, "currentArmLevel": "L2", "exitAllowance": 30})
    assert after(arming, {"arm": False}) == {"isArmed": False, "currentArmLevel": "L2", "exitAllowance": 0}


def test_a_single_level_system_arms_and_disarms() -> None:
    device = register({})
    assert after(device, {"arm": True}) == {"isArmed": True}
    assert after(register({}, {"isArmed": True}), {"arm": False}) == {"isArmed": False}


def test_cancelling_within_the_exit_allowance_disarms() -> None:
    arming = register(LEVELS, {"isArmed": True, "currentArmLevel": "L2", "exitAllowance": 45})
    assert after(arming, {"arm": True, "cancel": True}) == {
        "isArmed": False,
        "currentArmLevel": "L2",
        "exitAllowance": 0,
    }


def test_cancelling_after_the_exit_allowance_is_too_late() -> None:
    armed = register(LEVELS, {"isArmed": True, "currentArmLevel": "L2", "exitAllowance": 0})
    assert code_of(armed, {"arm": True, "cancel": True}) == "cancelTooLate"
    assert code_of(register(LEVELS, {"isArmed": True, "currentArmLevel": "L2"}), {"arm": True, "cancel": True}) == (
        "cancelTooLate"
    )


def test_cancelling_when_nothing_is_arming_changes_nothing() -> None:
    assert after(register(LEVELS), {"arm": True, "cancel": True}) == {"isArmed": False, "currentArmLevel": "L1"}


def test_cancelling_a_disarm_is_not_supported() -> None:
    assert code_of(register(LEVELS, {"isArmed": True, "currentArmLevel": "L1"}), {"arm": False, "cancel": True}) == (
        "notSupported"
    )


def test_a_cancel_with_a_level_is_a_protocol_error() -> None:
    assert code_of(register(LEVELS), {"arm": True, "cancel": True, "armLevel": "L1"}) == "protocolError"


def test_a_current_level_that_is_not_available_is_refused() -> None:
    with pytest.raises(InvalidDevice, match="currentArmLevel"):
        register(LEVELS, {"isArmed": True, "currentArmLevel": "L9"})
    with pytest.raises(InvalidDevice, match="currentArmLevel"):
        register({}, {"isArmed": True, "currentArmLevel": "L1"})


def test_google_schema_wants_a_level_even_from_single_level_systems() -> None:
    # Google's description makes currentArmLevel required only with availableArmLevels; its JSON schema requires
    # it always. We follow the description: a single-level system has no level to name.
    states = register({}).query_states()
    assert oracle().problems(oracle().trait("ArmDisarm").states or {}, states) == [
        "<root>: 'currentArmLevel' is a required property"
    ]
