"""TemperatureSetting: thermostat modes and setpoints, a single target or (in heatcool mode) a low/high range.

Temperatures are Celsius on the wire whatever the device shows (`thermostatTemperatureUnit` is only the
display unit Google speaks in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, array, enum, exclusive, integer, number, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, clamp, command, require_range

MODES = ("off", "heat", "cool", "on", "heatcool", "auto", "fan-only", "purifier", "eco", "dry")
HEATCOOL = "heatcool"

# Google's documented defaults when the device does not give its own.
DEFAULT_RANGE_C = (10.0, 32.0)
DEFAULT_BUFFER_C = 2.0
# A new thermostat starts at a comfortable room temperature.
DEFAULT_SETPOINT_C = 21.0

SETPOINT = "thermostatTemperatureSetpoint"
HIGH = "thermostatTemperatureSetpointHigh"
LOW = "thermostatTemperatureSetpointLow"
MODE = "thermostatMode"

ALREADY_AT_MAX = "alreadyAtMax"
ALREADY_AT_MIN = "alreadyAtMin"
RANGE_TOO_CLOSE = "rangeTooClose"

_MODE_LIST = "|".join(MODES)


def modes(attributes: Mapping[str, Any]) -> list[str]:
    """The device's modes; the deprecated form is one comma-separated string."""
    value = attributes.get("availableThermostatModes") or []
    if isinstance(value, str):
        return [mode for mode in value.split(",") if mode]
    return list(value)


def limits(attributes: Mapping[str, Any]) -> tuple[float, float]:
    span = attributes.get("thermostatTemperatureRange")
    if not span:
        return DEFAULT_RANGE_C
    return float(span["minThresholdCelsius"]), float(span["maxThresholdCelsius"])


def buffer(attributes: Mapping[str, Any]) -> float:
    return float(attributes.get("bufferRangeCelsius", DEFAULT_BUFFER_C))


def display_degree(attributes: Mapping[str, Any]) -> float:
    """One degree of the device's display unit, in Celsius."""
    return 5 / 9 if attributes.get("thermostatTemperatureUnit") == "F" else 1.0


def _round(value: float) -> float:
    # Sums of Celsius fractions (Fahrenheit steps) otherwise drift into 21.999999999.
    return round(value, 2)


def range_around(center: float, width: float, low_limit: float, high_limit: float) -> tuple[float, float]:
    """A low/high pair `width` apart around `center`, moved as a whole to fit within the limits."""
    if width >= high_limit - low_limit:
        return low_limit, high_limit
    low = clamp(center - width / 2, low_limit, high_limit - width)
    return _round(low), _round(low + width)


@register
class TemperatureSetting(Trait):
    name = "TemperatureSetting"
    attributes_schema = obj(
        {
            "availableThermostatModes": {
                "oneOf": [
                    array(enum(*MODES), uniqueItems=True),
                    # Deprecated by Google but still accepted: "off,heat,cool".
                    {"type": "string", "pattern": f"^({_MODE_LIST}|)(,({_MODE_LIST}|))*$"},
                ]
            },
            "thermostatTemperatureRange": obj(
                {"minThresholdCelsius": number(), "maxThresholdCelsius": number()},
                required=("minThresholdCelsius", "maxThresholdCelsius"),
            ),
            "thermostatTemperatureUnit": enum("C", "F"),
            "bufferRangeCelsius": number(0),
            "commandOnlyTemperatureSetting": BOOLEAN,
            "queryOnlyTemperatureSetting": BOOLEAN,
        },
        required=("availableThermostatModes", "thermostatTemperatureUnit"),
        **exclusive("commandOnlyTemperatureSetting", "queryOnlyTemperatureSetting"),
    )
    # What is stored. The device may remember both a single setpoint and a range; Google gets the one its
    # current mode uses (see query_states).
    states_schema = obj(
        {
            MODE: enum("none", *MODES),
            "activeThermostatMode": enum("none", *MODES),
            SETPOINT: number(),
            HIGH: number(),
            LOW: number(),
            "thermostatTemperatureAmbient": number(),
            "thermostatHumidityAmbient": number(0, 100),
            "targetTempReachedEstimateUnixTimestampSec": integer(),
        }
    )
    command_only_attribute = "commandOnlyTemperatureSetting"
    query_only_attribute = "queryOnlyTemperatureSetting"

    @classmethod
    def query_states(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        """Google takes either a single setpoint or a low/high range, never both: heatcool reports the range."""
        states = super().query_states(attributes, state)
        ranged = states.get(MODE) == HEATCOOL and HIGH in states and LOW in states
        if ranged or SETPOINT not in states:
            states.pop(SETPOINT, None)
        else:
            states.pop(HIGH, None)
            states.pop(LOW, None)
        return states

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        available = modes(attributes)
        low_limit, high_limit = limits(attributes)
        setpoint = clamp(DEFAULT_SETPOINT_C, low_limit, high_limit)
        state: dict[str, Any] = {
            MODE: "off" if "off" in available else (available[0] if available else "none"),
            SETPOINT: setpoint,
            # Unknown until the device reports it; Google requires a value, and the setpoint is a fair guess.
            "thermostatTemperatureAmbient": setpoint,
        }
        if HEATCOOL in available:
            state[LOW], state[HIGH] = range_around(setpoint, buffer(attributes), low_limit, high_limit)
        return state

    @command("ThermostatTemperatureSetpoint", params=obj({SETPOINT: number()}, required=(SETPOINT,)))
    def set_setpoint(self, ctx: CommandContext) -> dict[str, Any]:
        value = ctx.params[SETPOINT]
        low_limit, high_limit = limits(ctx.attributes)
        require_range(value, low_limit, high_limit, "setpoint (C)")
        changes: dict[str, Any] = {SETPOINT: value}
        if ctx.state.get(MODE) == HEATCOOL and HIGH in ctx.state and LOW in ctx.state:
            # A single target in heatcool mode moves the range to centre on it, keeping its width.
            width = max(ctx.state[HIGH] - ctx.state[LOW], buffer(ctx.attributes))
            changes[LOW], changes[HIGH] = range_around(value, width, low_limit, high_limit)
        return changes

    @command("ThermostatTemperatureSetRange", params=obj({HIGH: number(), LOW: number()}, required=(HIGH, LOW)))
    def set_range(self, ctx: CommandContext) -> dict[str, Any]:
        if HEATCOOL not in modes(ctx.attributes):
            raise CommandError(errors.NOT_SUPPORTED, "a range needs heatcool mode, which this device lacks")
        high, low = ctx.params[HIGH], ctx.params[LOW]
        low_limit, high_limit = limits(ctx.attributes)
        require_range(low, low_limit, high_limit, "low setpoint (C)")
        require_range(high, low_limit, high_limit, "high setpoint (C)")
        if high - low < buffer(ctx.attributes):
            raise CommandError(RANGE_TOO_CLOSE, f"{low}..{high} is closer than {buffer(ctx.attributes)} C")
        # Asking for a range asks for the mode that keeps one.
        return {LOW: low, HIGH: high, MODE: HEATCOOL}

    @command("ThermostatSetMode", params=obj({MODE: enum(*MODES)}, required=(MODE,)))
    def set_mode(self, ctx: CommandContext) -> dict[str, Any]:
        mode = ctx.params[MODE]
        if mode not in modes(ctx.attributes):
            raise CommandError(errors.NOT_SUPPORTED, f"mode {mode!r} is not one of this thermostat's modes")
        changes: dict[str, Any] = {MODE: mode}
        state = ctx.state
        low_limit, high_limit = limits(ctx.attributes)
        # The new mode reports a setpoint or a range: make sure the one it needs exists.
        if mode == HEATCOOL and not (HIGH in state and LOW in state):
            center = state.get(SETPOINT, clamp(DEFAULT_SETPOINT_C, low_limit, high_limit))
            changes[LOW], changes[HIGH] = range_around(center, buffer(ctx.attributes), low_limit, high_limit)
        elif mode != HEATCOOL and SETPOINT not in state and HIGH in state and LOW in state:
            changes[SETPOINT] = _round((state[HIGH] + state[LOW]) / 2)
        return changes

    @command(
        "TemperatureRelative",
        params={
            "oneOf": [
                obj(
                    {"thermostatTemperatureRelativeDegree": number()},
                    required=("thermostatTemperatureRelativeDegree",),
                ),
                obj(
                    {"thermostatTemperatureRelativeWeight": integer(-5, 5)},
                    required=("thermostatTemperatureRelativeWeight",),
                ),
            ]
        },
    )
    def relative(self, ctx: CommandContext) -> dict[str, Any]:
        if "thermostatTemperatureRelativeDegree" in ctx.params:
            change = ctx.params["thermostatTemperatureRelativeDegree"]
        else:
            # "A little warmer" (1) .. "a lot warmer" (5): one degree of the device's display unit per step.
            change = ctx.params["thermostatTemperatureRelativeWeight"] * display_degree(ctx.attributes)
        low_limit, high_limit = limits(ctx.attributes)
        state = ctx.state
        if state.get(MODE) == HEATCOOL and HIGH in state and LOW in state:
            low, high = state[LOW], state[HIGH]
            self._refuse_beyond(change, at_max=high >= high_limit, at_min=low <= low_limit)
            # The range moves as a whole, so that it keeps its width at the limits.
            shift = clamp(change, low_limit - low, high_limit - high)
            return {LOW: _round(low + shift), HIGH: _round(high + shift)}
        current = state.get(SETPOINT, clamp(DEFAULT_SETPOINT_C, low_limit, high_limit))
        self._refuse_beyond(change, at_max=current >= high_limit, at_min=current <= low_limit)
        return {SETPOINT: _round(clamp(current + change, low_limit, high_limit))}

    @staticmethod
    def _refuse_beyond(change: float, at_max: bool, at_min: bool) -> None:
        """A relative change that cannot move at all is refused with Google's codes for it."""
        if change > 0 and at_max:
            raise CommandError(ALREADY_AT_MAX, "the setpoint is already at the device's maximum")
        if change < 0 and at_min:
            raise CommandError(ALREADY_AT_MIN, "the setpoint is already at the device's minimum")
