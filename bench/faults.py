"""HomeGraph faults: the Report State benchmark workload and a Request Sync burst while the HomeGraph stand-in answers
20 % of the calls with 429, 500, 503 or a delay beyond the client's timeout (5 % each), and 404 to every call for a
few designated users. Then the faults stop, the pipelines recover, and the figures say whether anything was lost:

  report_state  bench/report_state.py's workload, seed and variant runner (scaled by its BENCH_RS_* variables),
                faults armed from the first call after the seed for BENCH_RS_DURATION_S; per linked device, whether
                the state HomeGraph ends up with equals the last published one; announcements received twice;
                calls for a 404'd user after its 404.
  request_sync  BENCH_FAULTS_SYNC_USERS users each adding BENCH_FAULTS_SYNC_DEVICES devices one by one, all at once
                (bench/request_sync.py's devices, two sync_on_device_change instances behind LocalEventarc with
                Eventarc's retries); per user, requestSync calls answered in time (the coalescing promise: at most
                2 for a burst shorter than the window) and whether one was issued after the last change.

A delayed call is handled by the stand-in after its delay, as a server finishes work its client gave up on: such a
"late landing" is counted apart, since the client's retry of the same call lands too.

`python -m bench faults` prints the table and writes bench/results/faults.json (BENCH_FAULTS_OUT: another path).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import RESULTS
from tools import emulators
from tools.homegraph_standin import Fault, StandIn

ROOT = Path(__file__).resolve().parents[1]
FAULT_RATE = 0.20
TRANSIENT_STATUSES = (429, 500, 503)
CLIENT_TIMEOUT_S = float(os.environ.get("BENCH_FAULTS_CLIENT_TIMEOUT_S", "1"))
LATE_BY_S = 0.5  # a timed-out call reaches HomeGraph this long after the client gave up
SYNC_USERS = int(os.environ.get("BENCH_FAULTS_SYNC_USERS", "20"))
SYNC_DEVICES = int(os.environ.get("BENCH_FAULTS_SYNC_DEVICES", "20"))
SYNC_WINDOW_S = float(os.environ.get("BENCH_FAULTS_SYNC_WINDOW_S", "5"))
CLIENT_ATTEMPTS = int(os.environ.get("BENCH_FAULTS_CLIENT_ATTEMPTS", "2"))
NOTIFY_USERS = int(os.environ.get("BENCH_FAULTS_NOTIFY_USERS", "20"))
NOTIFY_PRESSES = int(os.environ.get("BENCH_FAULTS_NOTIFY_PRESSES", "10"))
NOTIFY_DURATION_S = float(os.environ.get("BENCH_FAULTS_NOTIFY_DURATION_S", "10"))
NOT_FOUND_USERS = 2  # per part: every call for them is answered 404
SEED = 20261208


def fault_plan(method: str, not_found: Iterable[str]) -> list[Fault]:
    """404 for the designated users; then 429, 500, 503 and a timeout, 5 % of the calls each (the stand-in tries
    the faults in order, so each later one's rate is of the calls the earlier ones let through)."""
    # Users Google does not know get 404 from every method (devices.query too), as Google answers them.
    faults = [Fault(method="*", agent_user_id=user, status=404, message="injected 404") for user in not_found]
    kinds: list[dict[str, Any]] = [{"status": s, "message": f"injected {s}"} for s in TRANSIENT_STATUSES]
    kinds.append({"delay_s": CLIENT_TIMEOUT_S + LATE_BY_S})
    share = FAULT_RATE / len(kinds)
    for index, kind in enumerate(kinds):
        faults.append(Fault(method=method, rate=share / (1 - share * index), **kind))
    return faults


class FaultyStandIn(StandIn):
    """The stand-in with a fault plan that survives reset(), spares the benchmark's seed reports (requestId
    seed-...), is armed by the first other call and lifts after `duration_s` (then the pipelines recover)."""

    def __init__(self, plan: list[Fault], duration_s: float, **options: Any) -> None:
        super().__init__(seed=SEED, **options)
        self.plan = plan
        self.duration_s = duration_s
        self.armed_at: float | None = None
        self._spared = threading.local()

    def reset(self) -> None:
        super().reset()
        self.armed_at = None
        self.set_faults([Fault(**vars(fault)) for fault in self.plan])

    def lift(self) -> None:
        """The faults stop now."""
        self.armed_at = time.monotonic() - self.duration_s

    def handle(self, http_method: str, path: str, raw: bytes, caller: str) -> tuple[int, dict[str, Any]]:
        self._spared.seed = b'"requestId": "seed-' in raw[:200]
        return super().handle(http_method, path, raw, caller)

    def _fault_for(self, method: str, agent_user_id: str | None) -> Fault | None:
        if getattr(self._spared, "seed", False):
            return None
        with self._lock:
            if self.armed_at is None:
                self.armed_at = time.monotonic()
            if time.monotonic() - self.armed_at > self.duration_s:
                return None
        return super()._fault_for(method, agent_user_id)


def call_figures(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Calls, faults injected by kind, and late landings (timed out at the client, handled after all)."""
    faults: dict[str, int] = {}
    late = 0
    for call in calls:
        fault = call.get("fault")
        if fault is None:
            continue
        kind = str(fault["status"]) if fault["status"] is not None else "timeout"
        faults[kind] = faults.get(kind, 0) + 1
        late += 1 if fault["status"] is None and call["status"] == 200 else 0
    return {
        "calls": len(calls),
        "answered_in_time_200": sum(1 for c in calls if c["status"] == 200 and "fault" not in c),
        "faults_injected": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()),
        "late_landings": late,
    }


def after_not_found(calls: list[dict[str, Any]], users: Iterable[str]) -> dict[str, int]:
    """Per 404'd user: calls made after the first one answered 404 (the promise: none)."""
    result = {}
    for user in users:
        mine = [c for c in calls if c["agentUserId"] == user]
        first = next((i for i, c in enumerate(mine) if c["status"] == 404), None)
        result[user] = 0 if first is None else len(mine) - first - 1
    return result


# Report State


def report_state_under_faults(firestore: emulators.Emulator, pubsub: emulators.Emulator) -> dict[str, Any]:
    from bench import report_state as rs
    from functions.platform.firestore import client

    not_found = [rs.user_name(u) for u in range(NOT_FOUND_USERS)]
    standin = FaultyStandIn(fault_plan("reportStateAndNotification", not_found), rs.DURATION_S).start()
    env = {
        **os.environ,
        "HOMEGRAPH_ENDPOINT": standin.url,
        "HOMEGRAPH_TIMEOUT_S": str(CLIENT_TIMEOUT_S),
        "HOMEGRAPH_RETRY_ATTEMPTS": str(CLIENT_ATTEMPTS),
        "THREADS": str(rs.THREADS),
        "REPORT_WINDOW_MS": os.environ.get("REPORT_WINDOW_MS", "500"),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "BENCH_FIRESTORE_PID": str(firestore.process.pid),
    }
    plan = rs.workload()
    try:
        outcome = rs.run_variant("faults", "report_state", ROOT / "main.py", plan, env, standin)
        calls = [
            c
            for c in standin.calls("reportStateAndNotification")
            if not str(c["request"].get("requestId", "")).startswith("seed-")
        ]
        notifications = standin.notifications()
    finally:
        standin.stop()
    # Final correctness for the linked users (a 404'd user is unlinked by its 404: Google gets nothing more).
    linked_plan = [p for p in plan if p.user not in not_found]
    initial = {
        (rs.user_name(u), device): dict(state)
        for u in range(rs.USERS)
        if rs.user_name(u) not in not_found
        for device, state in [(f"light-{n}", rs.light("x")["state"]) for n in range(rs.LIGHTS)]
        + [(f"sensor-{n}", rs.sensor("x")["state"]) for n in range(rs.SENSORS)]
    }
    linked = rs.measure("faults", linked_plan, standin, client(), initial, outcome.failed_deliveries, outcome.wall_s)
    figures = call_figures(calls)
    wrong = wrong_devices(rs, linked_plan, standin, calls)
    return {
        "messages": len(plan),
        "users": rs.USERS,
        "devices_linked": linked.devices,
        **figures,
        "client_retries": len(calls) - len({c["request"].get("requestId") for c in calls}),
        "redeliveries": outcome.failed_deliveries,
        "final_state_correct_at_homegraph": linked.correct_homegraph,
        "final_state_correct_in_firestore": linked.correct_firestore,
        "changes_never_reported": linked.not_covered,
        "latency_p95_s": linked.row()["latency_p95_s"],
        "wrong_at_homegraph": wrong,
        "wrong_by_a_late_landing": sum(1 for w in wrong if w["late_landing_last"]),
        "notifications": len(notifications),
        "notifications_received_twice": sum(1 for n in notifications if n["duplicate"]),
        "calls_after_404": after_not_found(calls, not_found),
        "wall_s": round(outcome.wall_s, 1),
    }


def wrong_devices(rs: Any, plan: list[Any], standin: StandIn, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The devices whose state at HomeGraph is not their last published one, with the calls that carried them
    (what a failure needs for its diagnosis)."""
    last: dict[tuple[str, str], Any] = {}
    for planned in sorted(plan, key=lambda p: p.published):
        last[(planned.user, planned.device)] = planned
    wrong = []
    for (user, device), planned in sorted(last.items()):
        held = standin.states(user).get(device, {})
        if rs._value(device, held) != planned.value:
            carried = [
                {
                    "at": round(c["at"], 3),
                    "finishedAt": round(c.get("finishedAt", 0), 3),
                    "status": c["status"],
                    "fault": c.get("fault"),
                    "value": rs._value(device, c["request"]["payload"]["devices"].get("states", {}).get(device, {})),
                }
                for c in calls
                if c["agentUserId"] == user and device in c["request"]["payload"]["devices"].get("states", {})
            ]
            last_landed = max(carried, key=lambda c: c["finishedAt"], default=None)
            late_landing_last = bool(
                last_landed
                and last_landed["fault"]
                and last_landed["fault"]["status"] is None
                and last_landed["value"] == rs._value(device, held)
            )
            wrong.append(
                {
                    "device": f"{user}/{device}",
                    "expected": planned.value,
                    "held": held,
                    "late_landing_last": late_landing_last,  # a timed-out call, handled after a newer one
                    "calls": carried,
                }
            )
    return wrong


# Announcements


def doorbell() -> dict[str, Any]:
    return {
        "id": "doorbell",
        "type": "action.devices.types.DOORBELL",
        "traits": ["action.devices.traits.ObjectDetection"],
        "name": {"name": "Front door"},
        "willReportState": False,
        "notificationSupportedByAgent": True,
    }


def notifications_under_faults(firestore: emulators.Emulator) -> dict[str, Any]:
    """Doorbell presses (one eventId each) through the Report State pipeline in this process (Firestore emulator,
    the real HomeGraph client), delivered by a thread pool that redelivers every failed invocation, as Pub/Sub
    does, and delivers one message in ten twice (at-least-once delivery)."""
    import random

    from functions.core.device import parse_device
    from functions.core.state_messages import parse
    from functions.core.times import format_time_ms
    from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
    from functions.platform.firestore import client
    from functions.platform.homegraph import HomeGraphClient, RetryPolicy
    from functions.reporting.model import ReportDeferred, Settings
    from functions.reporting.pipeline import Reporter
    from functions.reporting.store import FirestoreReportStore
    from tools.cli import validated_devices

    project = os.environ["GOOGLE_CLOUD_PROJECT"]
    emulators.clear_firestore(firestore.address, project)
    users = [f"bell-{n:02d}" for n in range(NOTIFY_USERS)]
    standin = FaultyStandIn(fault_plan("reportStateAndNotification", users[:1]), NOTIFY_DURATION_S).start()
    standin.reset()
    db = client()
    for user in users:
        documents = validated_devices([doorbell()])
        FirestoreDeviceRegistry(db).add(user, documents)
        FirestoreFulfillmentStore(db).mark_linked(user, int(time.time() * 1000) - 3_600_000)
        standin.link(user, sync=False, devices=[parse_device(i, d).sync_view() for i, d in documents])
    homegraph = HomeGraphClient(
        endpoint=standin.url, timeout_s=CLIENT_TIMEOUT_S, retry=RetryPolicy(CLIENT_ATTEMPTS, 0.1, 0.5)
    )
    reporter = Reporter(FirestoreReportStore(db), lambda: homegraph, Settings(window_ms=300, retry_after_s=1.0))
    rng = random.Random(SEED)
    presses = [
        (rng.uniform(0, NOTIFY_DURATION_S), user, f"press-{user}-{n}") for user in users for n in range(NOTIFY_PRESSES)
    ]
    presses.sort()
    redeliveries = [0]
    count_lock = threading.Lock()

    def deliver(user: str, event_id: str, message_id: str, published_ms: int) -> None:
        at_ms = int(time.time() * 1000)
        body = {
            "agentUserId": user,
            "deviceId": "doorbell",
            "states": {},
            "observedAt": format_time_ms(at_ms),
            "eventId": event_id,
            "notifications": {
                "ObjectDetection": {"priority": 0, "detectionTimestamp": at_ms, "objects": {"unclassified": 1}}
            },
        }
        message = parse(json.dumps(body).encode(), {}, at_ms)
        while True:
            try:
                reporter.handle(message, message_id, published_ms)  # type: ignore[arg-type]
                return
            except ReportDeferred:
                with count_lock:
                    redeliveries[0] += 1
                time.sleep(0.5)

    started = time.time()
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        for at_s, user, event_id in presses:
            time.sleep(max(0.0, started + at_s - time.time()))
            published_ms = int(time.time() * 1000)
            copies = 2 if rng.random() < 0.1 else 1
            futures += [pool.submit(deliver, user, event_id, event_id, published_ms) for _ in range(copies)]
        for future in futures:
            future.result(timeout=300)
    standin.wait_idle(30)
    standin.stop()
    calls = standin.calls("reportStateAndNotification")
    received = standin.notifications()
    late = {c["request"].get("eventId") for c in calls if c.get("fault") and c["fault"]["status"] is None}
    announced = {n["eventId"] for n in received}
    linked_presses = {event_id for _, user, event_id in presses if user not in users[:1]}
    return {
        "presses": len(presses),
        "deliveries": len(futures),
        **call_figures(calls),
        "client_retries": len(calls) - len({c["request"].get("requestId") for c in calls}),
        "redeliveries": redeliveries[0],
        "presses_announced": f"{len(linked_presses & announced)}/{len(linked_presses)}",
        "received_twice": sum(1 for n in received if n["duplicate"]),
        "received_twice_without_a_late_landing": sum(
            1 for n in received if n["duplicate"] and n["eventId"] not in late
        ),
        "calls_after_404": after_not_found(calls, users[:1]),
    }


# Request Sync


def request_sync_under_faults(firestore: emulators.Emulator, eventarc: Any) -> dict[str, Any]:
    from google.cloud import firestore as firestore_sdk

    from bench.request_sync import DATABASE, PROJECT, light, settle
    from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
    from tools.cli import validated_devices
    from tools.eventarc import Retry
    from tools.serving import start_function

    run = f"faults-{time.time_ns()}"
    users = [f"{run}-user-{n:02d}" for n in range(SYNC_USERS)]
    not_found = users[:NOT_FOUND_USERS]
    standin = FaultyStandIn(fault_plan("requestSync", not_found), 3600, auto_link=True)
    standin.start()
    logs = ROOT / ".local-stack" / "bench-logs"
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": firestore.address,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_DATABASE": DATABASE,
        "HOMEGRAPH_ENDPOINT": standin.url,
        "HOMEGRAPH_TIMEOUT_S": str(CLIENT_TIMEOUT_S),
        "HOMEGRAPH_RETRY_ATTEMPTS": str(CLIENT_ATTEMPTS),
        "REQUEST_SYNC_WINDOW_S": str(SYNC_WINDOW_S),
        "PYTHONPATH": str(ROOT),
    }
    instances = [
        start_function("sync_on_device_change", env, signature="cloudevent", log_path=logs / f"faults-sync-{n}.log")
        for n in (1, 2)
    ]
    db = firestore_sdk.Client(project=PROJECT, database=DATABASE)
    registry, store = FirestoreDeviceRegistry(db), FirestoreFulfillmentStore(db)
    devices = validated_devices([light(i) for i in range(SYNC_DEVICES)])
    last_write: dict[str, float] = {}
    try:
        eventarc.register_firestore_trigger(
            firestore.url,
            PROJECT,
            run,
            "users/{agentUserId}/devices/{deviceId}",
            [served.url for served in instances],
            database=DATABASE,
            retry=Retry(attempts=8, min_backoff_s=0.3, max_backoff_s=2.0),
        )
        # Warm-up (cold start: the HomeGraph client and google-events load), without faults.
        warm = f"{run}-warm-up"
        store.mark_linked(warm, int(time.time() * 1000))
        registry.add(warm, devices[:2])
        settle(eventarc, standin)
        standin.reset()  # arms the faults again (from the next call on)
        for user in users:
            store.mark_linked(user, int(time.time() * 1000))

        def burst(user: str) -> None:
            for device in devices:
                registry.add(user, [device])
            snapshot = db.collection("users").document(user).collection("devices").document(devices[-1][0]).get()
            last_write[user] = float(snapshot.update_time.timestamp())

        started = time.time()
        with ThreadPoolExecutor(max_workers=len(users)) as pool:
            list(pool.map(burst, users))
        burst_s = time.time() - started
        time.sleep(SYNC_WINDOW_S + CLIENT_TIMEOUT_S * 3)  # the trailing calls run into the faults too
        standin.lift()
        settle(eventarc, standin)
        deliveries = [d for d in eventarc.deliveries(run) if f"users/{warm}/" not in d["document"]]
        calls = [c for c in standin.calls("requestSync") if c["agentUserId"] in users]
    finally:
        eventarc.route(run, [])
        for served in instances:
            served.stop()
        standin.stop()
    linked = [u for u in users if u not in not_found]
    per_user = {u: [c for c in calls if c["agentUserId"] == u] for u in linked}
    in_time = {u: sum(1 for c in mine if c["status"] == 200 and "fault" not in c) for u, mine in per_user.items()}
    covered = {u: any(c["status"] == 200 and c["at"] > last_write[u] for c in mine) for u, mine in per_user.items()}
    return {
        "users": len(users),
        "devices_per_burst": SYNC_DEVICES,
        "events": len(deliveries),
        "burst_s": round(burst_s, 2),
        "window_s": SYNC_WINDOW_S,
        **call_figures(calls),
        "redeliveries": sum(max(0, len(d["statuses"]) - 1) for d in deliveries),
        "events_not_delivered": sum(1 for d in deliveries if not d["delivered"]),
        "max_in_time_calls_per_burst": max(in_time.values(), default=0),
        "bursts_over_two_calls": sum(1 for n in in_time.values() if n > 2),
        "bursts_last_change_covered": f"{sum(covered.values())}/{len(linked)}",
        "calls_after_404": after_not_found(calls, not_found),
    }


def run() -> dict[str, Any]:
    from tools.eventarc import LocalEventarc

    logs = ROOT / ".local-stack" / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    eventarc = LocalEventarc().start()
    project = "demo-smart-home-bench"
    firestore = emulators.start_firestore(
        project, functions_emulator=eventarc.address, log_path=logs / "faults-firestore.log"
    )
    pubsub = emulators.start_pubsub(project, log_path=logs / "faults-pubsub.log")
    os.environ.update(
        FIRESTORE_EMULATOR_HOST=firestore.address, PUBSUB_EMULATOR_HOST=pubsub.address, GOOGLE_CLOUD_PROJECT=project
    )
    try:
        report = report_state_under_faults(firestore, pubsub)
        announcements = notifications_under_faults(firestore)
        sync = request_sync_under_faults(firestore, eventarc)
    finally:
        pubsub.stop()
        firestore.stop()
        eventarc.stop()
    return {
        "fault_rate": FAULT_RATE,
        "client_timeout_s": CLIENT_TIMEOUT_S,
        "client_attempts": CLIENT_ATTEMPTS,
        "report_state": report,
        "notifications": announcements,
        "request_sync": sync,
    }


def _print(name: str, figures: Mapping[str, Any]) -> None:
    print(f"  {name}")
    for key, value in figures.items():
        print(f"    {key:<34} {value}")


def main() -> None:
    result = run()
    print(f"\nfaults ({result['fault_rate']:.0%} of HomeGraph calls: 429/500/503/timeout; 404 for designated users)")
    _print("report_state", result["report_state"])
    _print("notifications", result["notifications"])
    _print("request_sync", result["request_sync"])
    out = Path(os.environ.get("BENCH_FAULTS_OUT") or RESULTS / "faults.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
