"""TemperatureControl: a target temperature for appliances other than thermostats (ovens, kettles, freezers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.schema import BOOLEAN, enum, exclusive, number, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, command, require_range


@register
class TemperatureControl(Trait):
    name = "TemperatureControl"
    attributes_schema = obj(
        {
            "temperatureRange": obj(
                {"minThresholdCelsius": number(), "maxThresholdCelsius": number()},
                required=("minThresholdCelsius", "maxThresholdCelsius"),
            ),
            "temperatureStepCelsius": {"type": "number", "exclusiveMinimum": 0},
            "temperatureUnitForUX": enum("C", "F"),
            "commandOnlyTemperatureControl": BOOLEAN,
            "queryOnlyTemperatureControl": BOOLEAN,
        },
        required=("temperatureRange", "temperatureUnitForUX"),
        **exclusive("commandOnlyTemperatureControl", "queryOnlyTemperatureControl"),
    )
    # Celsius always; temperatureUnitForUX only tells Google how to speak to the user.
    states_schema = obj({"temperatureSetpointCelsius": number(), "temperatureAmbientCelsius": number()})
    command_only_attribute = "commandOnlyTemperatureControl"
    query_only_attribute = "queryOnlyTemperatureControl"

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        # A query-only device (a thermometer) has no setpoint; others start at their lowest setting.
        if attributes.get("queryOnlyTemperatureControl") is True:
            return {}
        return {"temperatureSetpointCelsius": attributes["temperatureRange"]["minThresholdCelsius"]}

    @command("SetTemperature", params=obj({"temperature": number()}, required=("temperature",)))
    def set_temperature(self, ctx: CommandContext) -> dict[str, Any]:
        value = ctx.params["temperature"]
        span = ctx.attributes["temperatureRange"]
        require_range(value, span["minThresholdCelsius"], span["maxThresholdCelsius"], "temperature (C)")
        # Kept as given: the device rounds to its own step (temperatureStepCelsius), Google already converted
        # the user's unit, and rounding here again would drift from what the user asked.
        return {"temperatureSetpointCelsius": value}
