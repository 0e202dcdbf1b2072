"""EnergyStorage: devices with a battery, or that charge another device, reporting how much energy they hold.

Rechargeable devices (`isRechargeable`) may also report charging, being plugged in and capacity until full,
and accept Charge unless they are query-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, array, enum, integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, command

DEVICE_UNPLUGGED = "deviceUnplugged"

_CAPACITY = array(
    obj(
        {"rawValue": integer(), "unit": enum("SECONDS", "MILES", "KILOMETERS", "PERCENTAGE", "KILOWATT_HOURS")},
        required=("rawValue", "unit"),
    )
)
# States only a rechargeable device reports.
_CHARGING_STATES = frozenset({"capacityUntilFull", "isCharging", "isPluggedIn"})


@register
class EnergyStorage(Trait):
    name = "EnergyStorage"
    attributes_schema = obj(
        {
            "queryOnlyEnergyStorage": BOOLEAN,
            "energyStorageDistanceUnitForUX": enum("KILOMETERS", "MILES"),
            "isRechargeable": BOOLEAN,
        },
        # Google requires the switch itself; an absent or wrong one is refused naming it.
        required=("queryOnlyEnergyStorage",),
    )
    states_schema = obj(
        {
            "descriptiveCapacityRemaining": enum("CRITICALLY_LOW", "LOW", "MEDIUM", "HIGH", "FULL"),
            "capacityRemaining": _CAPACITY,
            "capacityUntilFull": _CAPACITY,
            "isCharging": BOOLEAN,
            "isPluggedIn": BOOLEAN,
        }
    )
    query_only_attribute = "queryOnlyEnergyStorage"

    @classmethod
    def state_keys(cls, attributes: Mapping[str, Any]) -> frozenset[str]:
        keys = super().state_keys(attributes)
        return keys if attributes.get("isRechargeable") is True else keys - _CHARGING_STATES

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        # Google requires the descriptive level in every report; MEDIUM claims neither a full nor an empty
        # battery until the device cloud reports the real one.
        state: dict[str, Any] = {"descriptiveCapacityRemaining": "MEDIUM"}
        if attributes.get("isRechargeable") is True:
            state["isCharging"] = False
        return state

    @command("Charge", params=obj({"charge": BOOLEAN}, required=("charge",)))
    def charge(self, ctx: CommandContext) -> dict[str, Any]:
        if ctx.attributes.get("isRechargeable") is not True:
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this device is not rechargeable")
        charge = ctx.params["charge"]
        if charge and ctx.state.get("isPluggedIn") is False:
            raise CommandError(DEVICE_UNPLUGGED, "the device is not plugged in")
        return {"isCharging": charge}
