"""InputSelector: inputs by key or synonym, next/previous wrapping around ordered inputs, command-only devices."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device
from functions.core.errors import CommandError, InvalidDevice
from tests.schema_oracle import oracle
from tests.unit.traits.media_helpers import apply, register, run


def inputs(**switches: Any) -> dict[str, Any]:
    return {
        "availableInputs": [
            {
                "key": "hdmi_1",
                "names": [
                    {"lang": "en", "name_synonym": ["hdmi 1", "DVD player"]},
                    {"lang": "de", "name_synonym": ["hdmi 1", "DVD Spieler"]},
                ],
            },
            {
                "key": "hdmi_2",
                "names": [{"lang": "en", "name_synonym": ["hdmi 2", "game console"]}],
            },
            {
                "key": "usb_1",
                "names": [
                    {"lang": "en", "name_synonym": ["usb 1", "Hard drive"]},
                    {"lang": "de", "name_synonym": ["usb 1", "Festplatte"]},
                ],
            },
        ],
        **switches,
    }


def receiver(state: dict[str, Any] | None = None, **switches: Any) -> Device:
    return register(["InputSelector"], inputs(**switches), state)


def test_a_new_device_is_on_its_first_input() -> None:
    device = receiver()
    assert device.query_states() == {"currentInput": "hdmi_1"}
    oracle().assert_states(device.trait_names, device.query_states(), "initial InputSelector")


@pytest.mark.parametrize(
    ("new_input", "language", "expected"),
    [
        ("usb_1", "en", "usb_1"),
        ("Hard drive", "en", "usb_1"),
        ("hard  DRIVE", "en-GB", "usb_1"),
        ("Festplatte", "de", "usb_1"),
        ("game console", "en", "hdmi_2"),
    ],
)
def test_set_input_by_key_or_synonym(new_input: str, language: str, expected: str) -> None:
    device = receiver()
    after = apply(device, run(device, "SetInput", {"newInput": new_input}, language=language))
    assert after.query_states() == {"currentInput": expected}


@pytest.mark.parametrize(("new_input", "language"), [("hdmi_9", "en"), ("Festplatte", "en"), ("", "en")])
def test_an_input_the_device_lacks_is_not_supported(new_input: str, language: str) -> None:
    with pytest.raises(CommandError) as refused:
        run(receiver(), "SetInput", {"newInput": new_input}, language=language)
    assert refused.value.code == "notSupported"
    assert refused.value.code in oracle().error_codes()


def test_next_input_walks_the_order_and_wraps_around() -> None:
    device = receiver(orderedInputs=True)
    seen = []
    for _ in range(4):
        device = apply(device, run(device, "NextInput"))
        seen.append(device.state["currentInput"])
    assert seen == ["hdmi_2", "usb_1", "hdmi_1", "hdmi_2"]


def test_previous_input_walks_back_and_wraps_around() -> None:
    device = receiver(orderedInputs=True)
    seen = []
    for _ in range(4):
        device = apply(device, run(device, "PreviousInput"))
        seen.append(device.state["currentInput"])
    assert seen == ["usb_1", "hdmi_2", "hdmi_1", "usb_1"]


@pytest.mark.parametrize("switches", [{}, {"orderedInputs": False}])
@pytest.mark.parametrize("command", ["NextInput", "PreviousInput"])
def test_next_and_previous_need_ordered_inputs(command: str, switches: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as refused:
        run(receiver(**switches), command)
    assert refused.value.code == "functionNotSupported"


def test_a_command_only_selector_keeps_and_reports_no_input() -> None:
    device = receiver(commandOnlyInputSelector=True, orderedInputs=True)
    assert device.state == {}
    assert device.query_states() == {}
    # Google does not QUERY a command-only trait, so there is no state to check against its schema (which would
    # require currentInput); what matters is that nothing is kept.
    after = device.with_state(run(device, "SetInput", {"newInput": "usb_1"}).state)
    assert after.state == {}
    assert after.query_states() == {}
    # Without a known current input, next starts at the first input and previous at the last.
    assert run(device, "NextInput").state == {"currentInput": "hdmi_1"}
    assert run(device, "PreviousInput").state == {"currentInput": "usb_1"}


def test_a_command_only_selector_refuses_a_stored_input() -> None:
    with pytest.raises(InvalidDevice, match="currentInput"):
        receiver({"currentInput": "hdmi_1"}, commandOnlyInputSelector=True)


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        ({"availableInputs": []}, "availableInputs"),
        ({"availableInputs": [{"key": "a", "names": []}, {"key": "a", "names": []}]}, "listed twice"),
        ({"availableInputs": [{"key": "a", "names": [{"lang": "en", "name_synonym": []}]}]}, "name_synonym"),
        ({"availableInputs": [{"key": "a", "names": []}], "orderedInputs": "yes"}, "orderedInputs"),
    ],
)
def test_unusable_input_lists_are_refused_naming_the_trait(attributes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidDevice, match=r"\(InputSelector\)") as refused:
        register(["InputSelector"], attributes)
    assert problem in str(refused.value)


def test_a_stored_input_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidDevice, match="currentInput"):
        receiver({"currentInput": 1})
