"""HumiditySetting: a target relative humidity in percent, for humidifiers and dehumidifiers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, exclusive, integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, clamp, command, require_range

# "A little" (1) .. "a lot" (5): a humidifier's useful band is narrow, so a step is five points.
PERCENT_PER_WEIGHT = 5
# A new device aims at a comfortable indoor humidity.
DEFAULT_SETPOINT = 50

MAX_SETTING_REACHED = "maxSettingReached"
MIN_SETTING_REACHED = "minSettingReached"


def limits(attributes: Mapping[str, Any]) -> tuple[int, int]:
    span = attributes.get("humiditySetpointRange") or {}
    return int(span.get("minPercent", 0)), int(span.get("maxPercent", 100))


@register
class HumiditySetting(Trait):
    name = "HumiditySetting"
    attributes_schema = obj(
        {
            "humiditySetpointRange": obj({"minPercent": integer(0, 100), "maxPercent": integer(0, 100)}),
            "commandOnlyHumiditySetting": BOOLEAN,
            "queryOnlyHumiditySetting": BOOLEAN,
        },
        **exclusive("commandOnlyHumiditySetting", "queryOnlyHumiditySetting"),
    )
    states_schema = obj({"humiditySetpointPercent": integer(0, 100), "humidityAmbientPercent": integer(1, 100)})
    command_only_attribute = "commandOnlyHumiditySetting"
    query_only_attribute = "queryOnlyHumiditySetting"

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        # A query-only device (a hygrometer) has no target; the ambient reading comes from the device.
        if attributes.get("queryOnlyHumiditySetting") is True:
            return {}
        return {"humiditySetpointPercent": int(clamp(DEFAULT_SETPOINT, *limits(attributes)))}

    @command("SetHumidity", params=obj({"humidity": integer()}, required=("humidity",)))
    def set_humidity(self, ctx: CommandContext) -> dict[str, Any]:
        value = ctx.params["humidity"]
        require_range(value, *limits(ctx.attributes), "humidity (%)")
        return {"humiditySetpointPercent": value}

    @command(
        "HumidityRelative",
        params={
            "oneOf": [
                obj({"humidityRelativePercent": integer(-100, 100)}, required=("humidityRelativePercent",)),
                obj({"humidityRelativeWeight": integer(-5, 5)}, required=("humidityRelativeWeight",)),
            ]
        },
    )
    def relative(self, ctx: CommandContext) -> dict[str, Any]:
        if "humidityRelativePercent" in ctx.params:
            change = ctx.params["humidityRelativePercent"]  # percentage points, like the setpoint itself
        else:
            change = ctx.params["humidityRelativeWeight"] * PERCENT_PER_WEIGHT
        low, high = limits(ctx.attributes)
        current = ctx.state.get("humiditySetpointPercent", int(clamp(DEFAULT_SETPOINT, low, high)))
        # A change that cannot move at all is refused with Google's codes for it; otherwise it stops at the limit.
        if change > 0 and current >= high:
            raise CommandError(MAX_SETTING_REACHED, f"the humidity target is already at {high}%")
        if change < 0 and current <= low:
            raise CommandError(MIN_SETTING_REACHED, f"the humidity target is already at {low}%")
        return {"humiditySetpointPercent": int(clamp(current + change, low, high))}
