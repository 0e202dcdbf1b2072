"""Concurrent EXECUTEs on one device: no lost update, no 5xx, the final state is the last applied write."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import Google
from tests.schema_oracle import oracle
from tools.google import execute_request, execution

pytestmark = pytest.mark.emulator

DIMMER: dict[str, Any] = {
    "id": "dimmer",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Dimmer"},
    "willReportState": True,
    "state": {"on": True, "brightness": 0},
}


def run_concurrently(count: int, action: Callable[[int], None]) -> None:
    barrier = threading.Barrier(count)

    def worker(index: int) -> None:
        barrier.wait()
        action(index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_fifty_concurrent_relative_executes_lose_no_update(
    google: Callable[[str], Google], add_devices: Callable[..., None]
) -> None:
    add_devices("alice", [DIMMER])
    alice = google("alice")
    answers: list[tuple[int, Any]] = []

    def nudge(_: int) -> None:
        request = execute_request([(["dimmer"], [execution("BrightnessRelative", {"brightnessRelativePercent": 1})])])
        answers.append(alice.post(request))

    run_concurrently(50, nudge)
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    statuses = []
    for _, body in answers:
        oracle().assert_response("execute", body)
        statuses.append(body["payload"]["commands"][0]["status"])
    applied = statuses.count("SUCCESS")
    assert set(statuses) <= {"SUCCESS", "ERROR"}
    from functions.fulfillment.store import FirestoreDeviceRegistry

    document = FirestoreDeviceRegistry().get("alice", "dimmer")
    assert document is not None
    # Every applied write is in the final state, and no write that was answered with an error is.
    assert document["state"]["brightness"] == applied
    assert applied >= 45, f"only {applied} of 50 won their write"


def test_concurrent_absolute_executes_end_on_one_of_the_written_values(
    google: Callable[[str], Google], add_devices: Callable[..., None]
) -> None:
    add_devices("alice", [DIMMER])
    alice = google("alice")
    answered: dict[int, Any] = {}

    def set_level(index: int) -> None:
        request = execute_request([(["dimmer"], [execution("BrightnessAbsolute", {"brightness": index + 1})])])
        answered[index + 1] = alice.post(request)

    run_concurrently(20, set_level)
    successes = {
        level for level, (_, body) in answered.items() if body["payload"]["commands"][0]["status"] == "SUCCESS"
    }
    from functions.fulfillment.store import FirestoreDeviceRegistry

    document = FirestoreDeviceRegistry().get("alice", "dimmer")
    assert document is not None
    assert document["state"]["brightness"] in successes
