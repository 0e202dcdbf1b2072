"""Pub/Sub redelivery and Eventarc retries: the same message or event delivered three times has the effect of once.

`report_state` gets one message, published on the Pub/Sub emulator and pulled from it, pushed three times in the
push subscription's envelope (same messageId and publishTime: what a redelivery is), one after the other and all
at once (a delivery whose ack deadline ran out while it was being handled). `sync_on_device_change` gets one
Firestore event three times: LocalEventarc's delivery and two redeliveries of it, again in turn and at once.
The effect is counted where it lands: HomeGraph stand-in calls and announcements, and the device's reportSeq (one
per state write of the pipeline).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.conftest import PROJECT
from tests.integration.conftest import REPO_ROOT
from tests.schema_oracle import oracle
from tests.unit.reporting_helpers import doorbell, lamp, message_json, washer
from tools import emulators
from tools.homegraph_standin import StandIn
from tools.pubsub_local import ServedFunction, create_subscription, create_topic, delete, push_body

pytestmark = pytest.mark.emulator

RUN = uuid.uuid4().hex[:8]
TOPIC = f"redelivery-{RUN}"
PULL = f"redelivery-pull-{RUN}"
TRIGGER = f"redelivery-devices-{RUN}"
COPIES = 3


@pytest.fixture(scope="module")
def functions(
    firestore_emulator: emulators.Emulator, pubsub_emulator: emulators.Emulator, local_eventarc: Any
) -> Iterator[dict[str, ServedFunction]]:
    """report_state (fed by hand) and sync_on_device_change (the trigger on the default database's devices)."""
    import functions_framework

    from tools.eventarc import Retry

    served = {
        target: ServedFunction(functions_framework.create_app(target=target, source=str(REPO_ROOT / "main.py")))
        for target in ("report_state", "sync_on_device_change")
    }
    create_topic(PROJECT, TOPIC)
    create_subscription(PROJECT, TOPIC, PULL)
    local_eventarc.register_firestore_trigger(
        firestore_emulator.url,
        PROJECT,
        TRIGGER,
        "users/{agentUserId}/devices/{deviceId}",
        [served["sync_on_device_change"].url],
        retry=Retry(attempts=4, min_backoff_s=0.3, max_backoff_s=1.0),
    )
    yield served
    local_eventarc.route(TRIGGER, [])
    delete(PROJECT, TOPIC, [PULL])
    for function in served.values():
        function.stop()


@dataclasses.dataclass
class World:
    functions: dict[str, ServedFunction]
    standin: StandIn
    db: Any
    eventarc: Any
    traits: dict[str, list[str]]

    def link(self, user: str, *devices: dict[str, Any]) -> None:
        from functions.core.device import parse_device
        from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
        from tools.cli import validated_devices

        documents = validated_devices(list(devices))
        self.traits.update({d["id"]: list(d["traits"]) for d in devices})
        FirestoreDeviceRegistry(self.db).add(user, documents)
        FirestoreFulfillmentStore(self.db).mark_linked(user, int(time.time() * 1000) - 3_600_000)
        self.standin.link(user, sync=False, devices=[parse_device(i, d).sync_view() for i, d in documents])
        self.settle([f"users/{user}/devices/{device_id}" for device_id, _ in documents])

    def settle(self, documents: Iterable[str] = ()) -> None:
        """Until the events of `documents` just written came (late under load), and then all is quiet."""
        assert self.eventarc.wait_for_documents(documents, timeout_s=60)
        assert self.eventarc.wait_idle(timeout_s=30, quiet_s=0.6)
        assert self.standin.wait_idle(30)

    def envelope(self, body: dict[str, Any]) -> bytes:
        """Publishes `body` on the topic and pulls it back: the push body of its (every) delivery."""
        from tools.pubsub_local import publisher, subscriber

        publisher().publish(f"projects/{PROJECT}/topics/{TOPIC}", json.dumps(body).encode()).result(timeout=30)
        subscription = f"projects/{PROJECT}/subscriptions/{PULL}"
        pulled = subscriber().pull(subscription=subscription, max_messages=1, timeout=30)
        [received] = pulled.received_messages
        subscriber().acknowledge(subscription=subscription, ack_ids=[received.ack_id])
        return push_body(received.message, subscription)

    def push(self, envelope: bytes, *, at_once: bool) -> list[int]:
        """Delivers the envelope COPIES times to report_state; the answers' statuses."""
        url = self.functions["report_state"].url + "/"

        def post(_: int) -> int:
            headers = {"Content-Type": "application/json"}
            return requests.post(url, data=envelope, headers=headers, timeout=60).status_code

        if at_once:
            with ThreadPoolExecutor(COPIES) as pool:
                return list(pool.map(post, range(COPIES)))
        return [post(n) for n in range(COPIES)]

    def reports(self, user: str) -> list[dict[str, Any]]:
        calls = self.standin.calls("reportStateAndNotification", user)
        for call in calls:
            oracle().assert_report(call["request"], self.traits)
        return calls

    def device(self, user: str, device_id: str) -> dict[str, Any]:
        snap = self.db.collection("users").document(user).collection("devices").document(device_id).get()
        return snap.to_dict() or {}


@pytest.fixture
def world(
    functions: dict[str, ServedFunction],
    firestore_db: Any,
    homegraph_standin: StandIn,
    local_eventarc: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    from functions.platform.homegraph import HomeGraphClient, RetryPolicy
    from functions.reporting import wiring as report_wiring
    from functions.reporting.pipeline import Reporter
    from functions.reporting.store import FirestoreReportStore
    from functions.request_sync import service as request_sync
    from functions.request_sync import wiring as sync_wiring
    from functions.request_sync.ledger_store import FirestoreSyncLedger

    monkeypatch.setenv("REPORT_WINDOW_MS", "300")
    client = HomeGraphClient(endpoint=homegraph_standin.url, timeout_s=2.0, retry=RetryPolicy(2, 0.05, 0.1))
    monkeypatch.setattr(
        report_wiring,
        "_reporter",
        Reporter(FirestoreReportStore(firestore_db), lambda: client, report_wiring.settings()),
    )
    settings = request_sync.Settings(window_s=1.0, call_budget_s=client.retry.worst_case_s(client.timeout_s))
    service = request_sync.RequestSyncService(FirestoreSyncLedger(firestore_db), client, settings)
    monkeypatch.setattr(sync_wiring, "_service", service)
    homegraph_standin.auto_link = True  # Google knows every user (their SYNC is not what these tests look at)
    world = World(functions, homegraph_standin, firestore_db, local_eventarc, {})
    yield world
    world.settle()  # nothing of this test still in flight


def user() -> str:
    return f"alice-{uuid.uuid4().hex[:8]}"


# Pub/Sub: the same message three times


@pytest.mark.parametrize("at_once", [False, True], ids=["in-turn", "at-once"])
def test_a_state_message_is_applied_and_reported_once(world: World, at_once: bool) -> None:
    alice = user()
    world.link(alice, lamp("lamp-1"))
    seq_before = world.device(alice, "lamp-1").get("reportSeq", 0)
    envelope = world.envelope(message_json("lamp-1", {"on": True, "brightness": 77}, int(time.time() * 1000), alice))
    assert world.push(envelope, at_once=at_once) == [200] * COPIES
    world.settle()
    [call] = world.reports(alice)
    assert call["request"]["payload"]["devices"]["states"] == {"lamp-1": {"on": True, "brightness": 77, "online": True}}
    stored = world.device(alice, "lamp-1")
    assert stored["state"] == {"on": True, "brightness": 77}
    assert stored.get("reportSeq", 0) == seq_before + 1  # one state write of the pipeline: applied once


@pytest.mark.parametrize("at_once", [False, True], ids=["in-turn", "at-once"])
def test_an_announcement_is_sent_once(world: World, at_once: bool) -> None:
    alice = user()
    world.link(alice, doorbell("doorbell"))
    now = int(time.time() * 1000)
    detection = {"ObjectDetection": {"priority": 0, "detectionTimestamp": now, "objects": {"named": ["Bob"]}}}
    body = message_json("doorbell", {}, now, alice, notifications=detection, eventId=f"press-{alice}")
    assert world.push(world.envelope(body), at_once=at_once) == [200] * COPIES
    world.settle()
    [call] = world.reports(alice)
    assert call["request"]["eventId"] == f"press-{alice}"
    [announced] = world.standin.notifications(alice)
    assert not announced["duplicate"]


def test_a_message_whose_first_delivery_failed_is_reported_once(world: World) -> None:
    alice = user()
    world.link(alice, lamp("lamp-1"))
    # Both of the client's attempts fail: the first delivery fails, and Pub/Sub delivers twice more.
    world.standin.add_fault(method="reportStateAndNotification", status=503, times=2)
    envelope = world.envelope(message_json("lamp-1", {"brightness": 33}, int(time.time() * 1000), alice))
    statuses = world.push(envelope, at_once=False)
    assert statuses[0] == 500
    assert statuses[1:] == [200, 200]
    world.settle()
    assert [c["status"] for c in world.reports(alice)] == [503, 503, 200]


# Eventarc: the same Firestore event three times


def write_and_redeliver(world: World, user_id: str, device_id: str, change: dict[str, Any], at_once: bool) -> str:
    """Writes the device document, then has its one event delivered twice more; returns the event id."""
    world.eventarc.clear()
    ref = world.db.collection("users").document(user_id).collection("devices").document(device_id)
    ref.update(change)
    [delivery] = world.eventarc.wait_for(1, TRIGGER, timeout_s=30) if not at_once else _first_event(world)
    for _ in range(COPIES - 1):
        world.eventarc.redeliver(delivery["eventId"])
    world.settle()
    deliveries = [d for d in world.eventarc.deliveries(TRIGGER) if d["eventId"] == delivery["eventId"]]
    assert len(deliveries) == COPIES
    assert all(d["delivered"] for d in deliveries)
    return str(delivery["eventId"])


def _first_event(world: World) -> list[dict[str, Any]]:
    """The event as soon as it arrives (its first delivery still in flight)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        received = world.eventarc.deliveries(TRIGGER)
        if received:
            return received[:1]
        time.sleep(0.005)
    raise AssertionError("no event came")


@pytest.mark.parametrize("at_once", [False, True], ids=["in-turn", "at-once"])
def test_a_device_cloud_write_is_reported_and_announced_once(world: World, at_once: bool) -> None:
    alice = user()
    world.link(alice, washer())
    done = {"currentTotalRemainingTime": 0, "currentCycleRemainingTime": 0, "currentRunCycle": [], "isRunning": False}
    write_and_redeliver(world, alice, "washer", {f"state.{k}": v for k, v in done.items()}, at_once)
    [call] = world.reports(alice)
    devices = call["request"]["payload"]["devices"]
    assert devices["states"]["washer"]["isRunning"] is False
    assert devices["notifications"]["washer"]["RunCycle"]["status"] == "SUCCESS"
    [announced] = world.standin.notifications(alice)
    assert not announced["duplicate"]


@pytest.mark.parametrize("at_once", [False, True], ids=["in-turn", "at-once"])
def test_a_rename_is_synced_once(world: World, at_once: bool) -> None:
    alice = user()
    world.link(alice, lamp("lamp-1"))
    before = len(world.standin.calls("requestSync", alice))
    write_and_redeliver(world, alice, "lamp-1", {"name.name": "Reading lamp"}, at_once)
    assert len(world.standin.calls("requestSync", alice)) == before + 1
    assert world.standin.calls("reportStateAndNotification", alice) == []  # a rename is no state change
