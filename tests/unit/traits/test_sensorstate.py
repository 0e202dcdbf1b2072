"""SensorState: per-sensor capabilities and readings, the device's own sensors, and notifications."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from functions.core.device import new_device_document, parse_device
from functions.core.errors import InvalidDevice
from functions.core.schema import errors as schema_errors
from functions.core.traits.sensorstate import SENSORS, SensorState
from tests.schema_oracle import oracle

SMOKE_AND_PM = {
    "sensorStatesSupported": [
        {
            "name": "SmokeLevel",
            "descriptiveCapabilities": {"availableStates": ["smoke detected", "no smoke detected"]},
            "numericCapabilities": {"rawValueUnit": "PARTS_PER_MILLION"},
        },
        {"name": "PM2.5", "numericCapabilities": {"rawValueUnit": "MICROGRAMS_PER_CUBIC_METER"}},
        {"name": "WaterLeak", "descriptiveCapabilities": {"availableStates": ["leak", "no leak"]}},
    ]
}


def register(attributes: dict[str, Any], state: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "type": "action.devices.types.SENSOR",
        "traits": ["action.devices.traits.SensorState"],
        "name": {"name": "sensor"},
        "willReportState": True,
        "attributes": copy.deepcopy(attributes),
    }
    if state is not None:
        document["state"] = state
    return new_device_document("s1", document)


def state_problems(readings: list[dict[str, Any]], attributes: dict[str, Any] = SMOKE_AND_PM) -> list[str]:
    return SensorState.state_errors(attributes, {"currentSensorStateData": readings})


def google_states() -> dict[str, Any]:
    states = oracle().trait("SensorState").states
    assert states is not None
    return states


def test_initial_state_reports_descriptive_sensors_as_unknown_and_skips_numeric_only_ones() -> None:
    document = register(SMOKE_AND_PM)
    assert document["state"] == {
        "currentSensorStateData": [
            {"name": "SmokeLevel", "currentSensorState": "unknown"},
            {"name": "WaterLeak", "currentSensorState": "unknown"},
        ]
    }
    device = parse_device("s1", document)
    oracle().assert_states(device.trait_names, device.query_states(), "initial SensorState")


def test_google_examples_of_states_and_notifications_are_valid_for_us() -> None:
    schemas = oracle().trait("SensorState")
    for example in oracle().examples(schemas.states):
        assert schema_errors(SensorState.states_schema, example) == [], example
    for example in oracle().examples(schemas.notifications):
        assert schema_errors(SensorState.notification_schema or {}, example) == [], example


def test_readings_are_checked_against_the_devices_declared_sensors() -> None:
    assert state_problems([{"name": "SmokeLevel", "currentSensorState": "smoke detected", "rawValue": 12.5}]) == []
    assert state_problems([{"name": "SmokeLevel", "currentSensorState": "unknown"}]) == []
    assert state_problems([{"name": "PM2.5", "rawValue": 35}]) == []

    undeclared = state_problems([{"name": "CarbonMonoxideLevel", "currentSensorState": "high"}])
    assert len(undeclared) == 1
    assert "CarbonMonoxideLevel is not in sensorStatesSupported" in undeclared[0]

    # "high" is one of Google's smoke states but not one this device listed.
    unlisted = state_problems([{"name": "SmokeLevel", "currentSensorState": "high"}])
    assert len(unlisted) == 1
    assert "'high' is not one of" in unlisted[0]

    numeric_not_declared = state_problems([{"name": "WaterLeak", "currentSensorState": "leak", "rawValue": 1}])
    assert numeric_not_declared, "WaterLeak has no numeric value at all"

    twice = state_problems([{"name": "PM2.5", "rawValue": 1}, {"name": "PM2.5", "rawValue": 2}])
    assert twice == ["state (SensorState).currentSensorStateData.1.name: PM2.5 is reported twice"]


def test_descriptive_state_of_a_numeric_only_declaration_is_refused() -> None:
    numeric_only = {
        "sensorStatesSupported": [{"name": "SmokeLevel", "numericCapabilities": {"rawValueUnit": "PARTS_PER_MILLION"}}]
    }
    problems = state_problems([{"name": "SmokeLevel", "currentSensorState": "high"}], numeric_only)
    assert problems == ["state (SensorState).currentSensorStateData.0.currentSensorState: 'high' is not one of []"]


@pytest.mark.parametrize(
    "reading",
    [
        {"name": "AirQuality", "rawValue": 501},
        {"name": "AirQuality", "rawValue": -1},
        {"name": "FilterLifeTime", "rawValue": 101},
        {"name": "HEPAFilterLifeTime", "currentSensorState": "good"},
        {"name": "FilterCleanliness", "rawValue": 3},
        {"name": "WaterLeak", "currentSensorState": "smoke detected"},
        {"name": "WaterLeak"},
        {"name": "Radon", "rawValue": 3},
        {"name": "PM10", "rawValue": "12"},
        {"name": "PM10", "rawValue": 12, "unit": "MICROGRAMS_PER_CUBIC_METER"},
    ],
)
def test_readings_google_refuses_we_refuse(reading: dict[str, Any]) -> None:
    value = {"currentSensorStateData": [reading]}
    assert oracle().problems(google_states(), value), "the case is meant to be invalid for Google too"
    assert schema_errors(SensorState.states_schema, value)


def test_every_sensor_state_and_value_agrees_with_google() -> None:
    """Our table of sensors against Google's schema, reading by reading."""
    samples = [-1, 0, 50, 100, 500, 501]
    for name, sensor in SENSORS.items():
        candidates: list[dict[str, Any]] = [{"name": name, "currentSensorState": s} for s in (*sensor.states, "bogus")]
        candidates += [{"name": name, "rawValue": v} for v in samples]
        for reading in candidates:
            value = {"currentSensorStateData": [reading]}
            google_ok = not oracle().problems(google_states(), value)
            ours_ok = not schema_errors(SensorState.states_schema, value)
            assert google_ok == ours_ok, (reading, google_ok, ours_ok)


@pytest.mark.parametrize(
    "declared",
    [
        {"name": "FilterCleanliness", "numericCapabilities": {"rawValueUnit": "PERCENTAGE"}},
        {"name": "AirQuality", "numericCapabilities": {"rawValueUnit": "PARTS_PER_MILLION"}},
        {"name": "CarbonDioxideLevel", "descriptiveCapabilities": {"availableStates": ["high"]}},
        {"name": "SmokeLevel", "descriptiveCapabilities": {"availableStates": ["on fire"]}},
        {"name": "SmokeLevel"},
        {"name": "SmokeLevel", "descriptiveCapabilities": {"availableStates": []}},
    ],
)
def test_capabilities_google_refuses_are_refused_at_registration(declared: dict[str, Any]) -> None:
    attributes = {"sensorStatesSupported": [declared]}
    google = oracle().trait("SensorState").attributes
    assert google is not None
    assert oracle().problems(google, attributes), "the case is meant to be invalid for Google too"
    with pytest.raises(InvalidDevice, match=r"\(SensorState\)"):
        register(attributes)


def test_a_sensor_declared_twice_is_refused() -> None:
    water = {"name": "WaterLeak", "descriptiveCapabilities": {"availableStates": ["leak"]}}
    with pytest.raises(InvalidDevice, match="WaterLeak is listed twice"):
        register({"sensorStatesSupported": [water, water]})


def test_a_submitted_state_with_an_unlisted_value_is_refused_at_registration() -> None:
    with pytest.raises(InvalidDevice, match="'high' is not one of"):
        register(SMOKE_AND_PM, {"currentSensorStateData": [{"name": "SmokeLevel", "currentSensorState": "high"}]})


def test_notifications_built_here_are_valid_for_google_and_for_us() -> None:
    notifications = oracle().trait("SensorState").notifications
    assert notifications is not None
    payload = SensorState.notification("SmokeLevel", "smoke detected")
    assert payload == {"SensorState": {"priority": 0, "name": "SmokeLevel", "currentSensorState": "smoke detected"}}
    oracle().assert_valid(notifications, payload, "SensorState notification")
    assert schema_errors(SensorState.notification_schema or {}, payload) == []


@pytest.mark.parametrize(
    ("sensor", "state"),
    [("PM2.5", "high"), ("SmokeLevel", "leak"), ("WaterLeak", "no leak!"), ("HEPAFilterLifeTime", "good")],
)
def test_notifications_google_refuses_we_refuse(sensor: str, state: str) -> None:
    notifications = oracle().trait("SensorState").notifications
    assert notifications is not None
    payload = SensorState.notification(sensor, state)
    assert oracle().problems(notifications, payload)
    assert schema_errors(SensorState.notification_schema or {}, payload)


def test_the_trait_has_no_commands() -> None:
    assert SensorState.commands == {}
