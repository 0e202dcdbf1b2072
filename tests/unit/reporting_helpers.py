"""Devices, messages and a recording HomeGraph for the Report State tests (unit and integration)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from functions.core.homegraph import HomeGraphError, NotFound, Ok
from functions.core.state_messages import StateMessage
from functions.core.times import format_time_ms

T = "action.devices.traits."
# Observation times of the test messages: a little in the past, whole seconds.
BASE_MS = (int(time.time()) - 600) * 1000


def lamp(device_id: str = "lamp-1", **extra: Any) -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.LIGHT",
        "traits": [T + "OnOff", T + "Brightness"],
        "name": {"name": device_id},
        "willReportState": True,
        "state": {"on": False, "brightness": 10},
        **extra,
    }


def lock(device_id: str = "front-door", **extra: Any) -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.LOCK",
        "traits": [T + "LockUnlock"],
        "name": {"name": device_id},
        "willReportState": True,
        "state": {"isLocked": False, "isJammed": False},
        **extra,
    }


def washer(device_id: str = "washer", notifications: bool = True) -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.WASHER",
        "traits": [T + "StartStop", T + "RunCycle"],
        "name": {"name": device_id},
        "willReportState": True,
        "notificationSupportedByAgent": notifications,
        "state": {
            "isRunning": True,
            "isPaused": False,
            "currentRunCycle": [{"currentCycle": "rinse", "lang": "en"}],
            "currentTotalRemainingTime": 120,
            "currentCycleRemainingTime": 60,
        },
    }


def doorbell(device_id: str = "doorbell", notifications: bool = True) -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.DOORBELL",
        "traits": [T + "ObjectDetection"],
        "name": {"name": device_id},
        "willReportState": False,
        "notificationSupportedByAgent": notifications,
    }


def smoke_detector(device_id: str = "smoke", notifications: bool = True) -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.SMOKE_DETECTOR",
        "traits": [T + "SensorState"],
        "name": {"name": device_id},
        "willReportState": True,
        "notificationSupportedByAgent": notifications,
        "attributes": {
            "sensorStatesSupported": [
                {
                    "name": "SmokeLevel",
                    "descriptiveCapabilities": {"availableStates": ["smoke detected", "high", "no smoke detected"]},
                }
            ]
        },
        "state": {"currentSensorStateData": [{"name": "SmokeLevel", "currentSensorState": "no smoke detected"}]},
    }


def router(device_id: str = "router") -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.ROUTER",
        "traits": [T + "NetworkControl"],
        "name": {"name": device_id},
        "willReportState": True,
        "attributes": {
            "supportsNetworkDownloadSpeedTest": True,
            "supportsNetworkUploadSpeedTest": True,
            "supportsGettingGuestNetworkPassword": True,
        },
        "state": {"networkEnabled": True, "networkSpeedTestInProgress": False, "guestNetworkPassword": "hunter2"},
    }


def document(device: Mapping[str, Any]) -> dict[str, Any]:
    """The stored document of a device definition (no `id`)."""
    return {key: copy.deepcopy(value) for key, value in device.items() if key != "id"}


def sync_view(device: Mapping[str, Any]) -> dict[str, Any]:
    """The device as a SYNC response lists it (what the stand-in is seeded with)."""
    return {key: copy.deepcopy(value) for key, value in device.items() if key not in ("state", "online", "backend")}


def message(
    device_id: str,
    states: Mapping[str, Any],
    at_ms: int = BASE_MS,
    user: str = "alice",
    **extra: Any,
) -> StateMessage:
    return StateMessage(user, device_id, dict(states), at_ms, **extra)


def message_json(
    device_id: str, states: Mapping[str, Any], at_ms: int = BASE_MS, user: str = "alice", **extra: Any
) -> dict[str, Any]:
    body = {"agentUserId": user, "deviceId": device_id, "states": dict(states), "observedAt": format_time_ms(at_ms)}
    body.update(extra)
    return body


class RecordingHomeGraph:
    """A HomeGraph port that records report bodies; `fail_with` errors are raised first, in order.

    Like Google, it answers 404 to every call for a user in `forgotten_users`, and to a report that names a device
    in `unknown_devices`, which devices.query then leaves out (`error_devices`: answered with errorCode
    deviceNotFound instead). `query_failures` and `sync_failures` are raised by the next queries and requestSyncs.
    """

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.failures: list[HomeGraphError] = []
        self.refuse: Any = None  # callable(body) -> HomeGraphError | None
        self.forgotten_users: set[str] = set()
        self.unknown_devices: set[str] = set()
        self.error_devices: set[str] = set()
        self.query_failures: list[HomeGraphError] = []
        self.sync_failures: list[HomeGraphError] = []
        self.queries: list[tuple[str, list[str]]] = []
        self.sync_requests: list[str] = []
        self._lock = threading.Lock()

    def request_sync(self, agent_user_id: str) -> Ok:
        with self._lock:
            self.sync_requests.append(agent_user_id)
            if self.sync_failures:
                raise self.sync_failures.pop(0)
            if agent_user_id in self.forgotten_users:
                raise NotFound("requestSync", 404, "Requested entity was not found.")
        return Ok()

    def report_state_and_notification(self, body: Mapping[str, Any]) -> Ok:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)
            if self.refuse is not None:
                error = self.refuse(body)
                if error is not None:
                    raise error
            devices = body["payload"]["devices"]
            named = set(devices.get("states", {})) | set(devices.get("notifications", {}))
            if body["agentUserId"] in self.forgotten_users or named & (self.unknown_devices | self.error_devices):
                raise NotFound("reportStateAndNotification", 404, "Requested entity was not found.")
            self.bodies.append(copy.deepcopy(dict(body)))
        return Ok({"requestId": body.get("requestId", "")})

    def query(self, agent_user_id: str, device_ids: Sequence[str], request_id: str | None = None) -> Ok:
        with self._lock:
            self.queries.append((agent_user_id, list(device_ids)))
            if self.query_failures:
                raise self.query_failures.pop(0)
            if agent_user_id in self.forgotten_users:
                raise NotFound("query", 404, "Requested entity was not found.")
            held = self.states()
            answer: dict[str, Any] = {}
            for device_id in device_ids:
                if device_id in self.error_devices:
                    answer[device_id] = {"status": "ERROR", "errorCode": "deviceNotFound"}
                elif device_id not in self.unknown_devices:
                    answer[device_id] = held.get(device_id, {"online": True})
        return Ok({"requestId": request_id or "", "payload": {"devices": answer}})

    def states(self) -> dict[str, dict[str, Any]]:
        """The states reported so far, merged per device in call order (key by key)."""
        merged: dict[str, dict[str, Any]] = {}
        for body in self.bodies:
            for device_id, states in body["payload"]["devices"].get("states", {}).items():
                merged.setdefault(device_id, {}).update(states)
        return merged

    def notifications(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(eventId, deviceId, notification by trait) of every call with notifications."""
        found = []
        for body in self.bodies:
            for device_id, by_trait in body["payload"]["devices"].get("notifications", {}).items():
                found.append((body.get("eventId"), device_id, by_trait))
        return found
