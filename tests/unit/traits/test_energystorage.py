"""EnergyStorage: capacity states, charging only for rechargeable devices that are not query-only."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import CommandError, InvalidDevice
from functions.core.traits.base import CommandContext
from functions.core.traits.energystorage import EnergyStorage
from tests.schema_oracle import oracle

TRAIT = EnergyStorage()
RECHARGEABLE = {"isRechargeable": True, "queryOnlyEnergyStorage": False}
BATTERY_ONLY = {"isRechargeable": False, "queryOnlyEnergyStorage": True}


def register(attributes: dict[str, Any], state: dict[str, Any] | None = None) -> Device:
    document: dict[str, Any] = {
        "type": "action.devices.types.CHARGER",
        "traits": ["action.devices.traits.EnergyStorage"],
        "name": {"name": "car"},
        "willReportState": True,
        "attributes": attributes,
    }
    if state is not None:
        document["state"] = state
    return parse_device("c1", new_device_document("c1", document))


def charge(device: Device, on: bool) -> dict[str, Any]:
    ctx = CommandContext("c1", "action.devices.commands.Charge", {"charge": on}, device.attributes, device.state, 0)
    states = device.with_state(TRAIT.execute(ctx).state).query_states()
    oracle().assert_states(device.trait_names, states, f"Charge {on}")
    return states


def code_of(device: Device, on: bool) -> str:
    ctx = CommandContext("c1", "action.devices.commands.Charge", {"charge": on}, device.attributes, device.state, 0)
    with pytest.raises(CommandError) as raised:
        TRAIT.execute(ctx)
    return raised.value.code


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("EnergyStorage")
    for example in oracle().examples(schemas.attributes):
        assert EnergyStorage.attribute_errors(example) == [], example
    for example in oracle().examples(schemas.states):
        assert EnergyStorage.state_errors(RECHARGEABLE, example) == [], example


def test_initial_states() -> None:
    assert register(RECHARGEABLE).query_states() == {"descriptiveCapacityRemaining": "MEDIUM", "isCharging": False}
    assert register(BATTERY_ONLY).query_states() == {"descriptiveCapacityRemaining": "MEDIUM"}
    oracle().assert_states(["EnergyStorage"], register(BATTERY_ONLY).query_states(), "initial EnergyStorage")


def test_reported_capacity_is_kept() -> None:
    state = {
        "descriptiveCapacityRemaining": "LOW",
        "capacityRemaining": [{"rawValue": 12, "unit": "MILES"}, {"rawValue": 20, "unit": "PERCENTAGE"}],
        "capacityUntilFull": [{"rawValue": 6000, "unit": "SECONDS"}],
        "isPluggedIn": True,
    }
    device = register({**RECHARGEABLE, "energyStorageDistanceUnitForUX": "MILES"}, state)
    assert charge(device, True) == {**state, "isCharging": True}


def test_charging_starts_and_stops() -> None:
    assert charge(register(RECHARGEABLE), True)["isCharging"] is True
    assert charge(register(RECHARGEABLE, {"isCharging": True}), False)["isCharging"] is False


def test_an_unplugged_device_cannot_start_charging_but_can_stop() -> None:
    unplugged = register(RECHARGEABLE, {"isPluggedIn": False})
    assert code_of(unplugged, True) == "deviceUnplugged"
    assert "deviceUnplugged" in oracle().error_codes()
    assert charge(unplugged, False)["isCharging"] is False


def test_query_only_and_non_rechargeable_devices_refuse_charge() -> None:
    assert code_of(register(BATTERY_ONLY), True) == "functionNotSupported"
    assert code_of(register({"isRechargeable": False, "queryOnlyEnergyStorage": False}), True) == "functionNotSupported"
    assert code_of(register({"isRechargeable": True, "queryOnlyEnergyStorage": True}), False) == "functionNotSupported"


def test_charging_states_belong_to_rechargeable_devices_only() -> None:
    assert "isCharging" not in EnergyStorage.state_keys(BATTERY_ONLY)
    with pytest.raises(InvalidDevice, match="isPluggedIn"):
        register(BATTERY_ONLY, {"isPluggedIn": True})


def test_the_query_only_switch_is_required() -> None:
    with pytest.raises(InvalidDevice, match=r"\(EnergyStorage\).*queryOnlyEnergyStorage"):
        register({"isRechargeable": True})


def test_capacities_must_be_whole_numbers_in_known_units() -> None:
    assert EnergyStorage.state_errors(RECHARGEABLE, {"capacityRemaining": [{"rawValue": 1.5, "unit": "MILES"}]})
    assert EnergyStorage.state_errors(RECHARGEABLE, {"capacityRemaining": [{"rawValue": 1, "unit": "LITERS"}]})
    assert EnergyStorage.state_errors(RECHARGEABLE, {"descriptiveCapacityRemaining": "EMPTY"})
