"""SensorState: qualitative (descriptive) and quantitative (numeric) sensor readings, e.g. air quality or smoke.

The trait has no commands. A device lists its sensors in `sensorStatesSupported`, each with descriptive
states, a numeric unit, or both; it reports `currentSensorStateData`, one entry per sensor. Sensors with
descriptive states can also be announced to the user through notifications.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.schema import JsonSchema, array, enum, integer, number, obj
from functions.core.traits import register
from functions.core.traits.base import Trait

UNKNOWN = "unknown"  # every descriptive sensor may report it, listed or not: the sensor has no value


@dataclass(frozen=True)
class Sensor:
    """What Google allows one sensor type to report."""

    states: tuple[str, ...] = ()  # descriptive states; none for numeric-only sensors
    unit: str | None = None  # numeric unit; None for descriptive-only sensors
    raw_range: tuple[float, float] | None = None  # bounds of the numeric value, where Google sets any


_PPM = "PARTS_PER_MILLION"

# Google's table of supported sensor types (the SensorState trait reference).
SENSORS: dict[str, Sensor] = {
    "AirQuality": Sensor(
        states=(
            "healthy",
            "moderate",
            "unhealthy",
            "unhealthy for sensitive groups",
            "very unhealthy",
            "hazardous",
            "good",
            "fair",
            "poor",
            "very poor",
            "severe",
            UNKNOWN,
        ),
        unit="AQI",
        raw_range=(0, 500),
    ),
    "CarbonMonoxideLevel": Sensor(
        states=("carbon monoxide detected", "high", "no carbon monoxide detected", UNKNOWN), unit=_PPM
    ),
    "SmokeLevel": Sensor(states=("smoke detected", "high", "no smoke detected", UNKNOWN), unit=_PPM),
    "FilterCleanliness": Sensor(states=("clean", "dirty", "needs replacement", UNKNOWN)),
    "WaterLeak": Sensor(states=("leak", "no leak", UNKNOWN)),
    "RainDetection": Sensor(states=("rain detected", "no rain detected", UNKNOWN)),
    "FilterLifeTime": Sensor(
        states=("new", "good", "replace soon", "replace now", UNKNOWN), unit="PERCENTAGE", raw_range=(0, 100)
    ),
    "PreFilterLifeTime": Sensor(unit="PERCENTAGE", raw_range=(0, 100)),
    "HEPAFilterLifeTime": Sensor(unit="PERCENTAGE", raw_range=(0, 100)),
    "Max2FilterLifeTime": Sensor(unit="PERCENTAGE", raw_range=(0, 100)),
    "CarbonDioxideLevel": Sensor(unit=_PPM),
    "PM2.5": Sensor(unit="MICROGRAMS_PER_CUBIC_METER"),
    "PM10": Sensor(unit="MICROGRAMS_PER_CUBIC_METER"),
    "VolatileOrganicCompounds": Sensor(unit=_PPM),
}

# Google announces the sensors that have descriptive states.
NOTIFYING_SENSORS = tuple(name for name, sensor in SENSORS.items() if sensor.states)


def _absent(key: str, why: str) -> dict[str, Any]:
    return {"not": {"required": [key], "description": why}}


def _per_sensor(rules: Mapping[str, JsonSchema]) -> list[dict[str, Any]]:
    """One if/then rule per sensor type, so that a wrong value is reported against its own sensor."""
    return [
        {"if": {"properties": {"name": {"const": name}}, "required": ["name"]}, "then": rule}
        for name, rule in rules.items()
    ]


def _capability_rule(name: str, sensor: Sensor) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    if sensor.states:
        listed = {"availableStates": {"items": enum(*sensor.states)}}
        rules.append({"properties": {"descriptiveCapabilities": {"properties": listed}}})
    else:
        rules.append(_absent("descriptiveCapabilities", f"{name} has no descriptive states"))
    if sensor.unit:
        rules.append({"properties": {"numericCapabilities": {"properties": {"rawValueUnit": {"const": sensor.unit}}}}})
    else:
        rules.append(_absent("numericCapabilities", f"{name} has no numeric value"))
    return {"allOf": rules}


def _reading_rule(name: str, sensor: Sensor) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    if sensor.states:
        rules.append({"properties": {"currentSensorState": enum(*sensor.states)}})
    else:
        rules.append(_absent("currentSensorState", f"{name} has no descriptive state"))
    if sensor.unit:
        low, high = sensor.raw_range or (None, None)
        rules.append({"properties": {"rawValue": number(low, high)}})
    else:
        rules.append(_absent("rawValue", f"{name} has no numeric value"))
    return {"allOf": rules}


_SUPPORTED_SENSOR = obj(
    {
        "name": enum(*SENSORS),
        "descriptiveCapabilities": obj(
            {"availableStates": array({"type": "string"}, min_items=1, uniqueItems=True)},
            required=("availableStates",),
        ),
        "numericCapabilities": obj({"rawValueUnit": {"type": "string"}}, required=("rawValueUnit",)),
    },
    required=("name",),
    # A sensor declares at least one capability besides its name.
    minProperties=2,
    allOf=_per_sensor({name: _capability_rule(name, sensor) for name, sensor in SENSORS.items()}),
)

_READING = obj(
    {"name": enum(*SENSORS), "currentSensorState": {"type": "string"}, "rawValue": {"type": "number"}},
    required=("name",),
    minProperties=2,  # a reading carries a descriptive state, a numeric value, or both
    allOf=_per_sensor({name: _reading_rule(name, sensor) for name, sensor in SENSORS.items()}),
)

_ANNOUNCEMENT = obj(
    {
        "priority": integer(0),  # 0: spoken aloud, the only level Google supports today
        "name": enum(*NOTIFYING_SENSORS),
        "currentSensorState": {"type": "string"},
    },
    required=("priority", "name", "currentSensorState"),
    allOf=_per_sensor(
        {name: {"properties": {"currentSensorState": enum(*SENSORS[name].states)}} for name in NOTIFYING_SENSORS}
    ),
)


def _supported(attributes: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        str(entry.get("name")): entry
        for entry in attributes.get("sensorStatesSupported") or ()
        if isinstance(entry, Mapping)
    }


@register
class SensorState(Trait):
    name = "SensorState"
    attributes_schema = obj(
        {"sensorStatesSupported": array(_SUPPORTED_SENSOR, min_items=1)},
        required=("sensorStatesSupported",),
    )
    # No key is required here: a device document may be stored before its first state arrives.
    states_schema = obj({"currentSensorStateData": array(_READING)})
    # The per-device share of a Report State `notifications` object, keyed by the trait name as Google has it.
    notification_schema = obj({"SensorState": _ANNOUNCEMENT}, required=("SensorState",))

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if problems:
            return problems
        names = [entry.get("name") for entry in attributes.get("sensorStatesSupported") or ()]
        repeated = sorted({str(name) for name in names if names.count(name) > 1})
        return [f"attributes (SensorState).sensorStatesSupported: {name} is listed twice" for name in repeated]

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        """Google's rules per sensor type, then the device's own: its sensors, states and capabilities."""
        problems = super().state_errors(attributes, state)
        if problems or cls.attribute_errors(attributes):
            return problems  # the device's own rules need valid attributes
        supported = _supported(attributes)
        seen: set[str] = set()
        for index, reading in enumerate(state.get("currentSensorStateData") or ()):
            where = f"state (SensorState).currentSensorStateData.{index}"
            name = str(reading["name"])
            declared = supported.get(name)
            if declared is None:
                problems.append(f"{where}.name: {name} is not in sensorStatesSupported")
                continue
            if name in seen:
                problems.append(f"{where}.name: {name} is reported twice")
            seen.add(name)
            if "currentSensorState" in reading:
                descriptive = declared.get("descriptiveCapabilities")
                allowed = [*descriptive["availableStates"], UNKNOWN] if descriptive else []
                if reading["currentSensorState"] not in allowed:
                    problems.append(
                        f"{where}.currentSensorState: {reading['currentSensorState']!r} is not one of {allowed}"
                    )
            if "rawValue" in reading and "numericCapabilities" not in declared:
                problems.append(f"{where}.rawValue: {name} declares no numericCapabilities")
        return problems

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Descriptive sensors start "unknown"; numeric-only sensors have no reading until the device sends one."""
        readings = [
            {"name": name, "currentSensorState": UNKNOWN}
            for name, entry in _supported(attributes).items()
            if "descriptiveCapabilities" in entry
        ]
        return {"currentSensorStateData": readings}

    @staticmethod
    def notification(sensor: str, current_state: str, priority: int = 0) -> dict[str, Any]:
        """The notification announcing that `sensor` is now in `current_state` (e.g. SmokeLevel, "high")."""
        return {"SensorState": {"priority": priority, "name": sensor, "currentSensorState": current_state}}
