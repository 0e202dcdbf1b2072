"""Request Sync benchmark: requestSync calls per burst of device writes, and the delay from a burst's last write to
the requestSync that covers it (the first one issued after that write's commit).

The real stack on this machine: the Firestore emulator with its trigger events delivered by LocalEventarc to two
`sync_on_device_change` instances under functions-framework, and the HomeGraph stand-in. Each burst goes to a
fresh user (linked), written with the CLI's own registry code:

  100 adds, one import   `devices add` of 100 devices (one batch: one commit time)
  100 adds, one by one   100 separate adds (100 commit times), as a device cloud registering a fleet would
  50 renames             50 renames in a row (`devices rename` each)

The delay runs from the last write's commit time (its update time) to the stand-in receiving the first requestSync
after it. The naive baseline (one requestSync per write event) is the number of events. The window is
REQUEST_SYNC_WINDOW_S (default 5 s, the production default); BENCH_SYNC_ROUNDS bursts per case (default 5).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS
from tools import emulators
from tools.eventarc import LocalEventarc, Retry
from tools.homegraph_standin import StandIn
from tools.serving import start_function

PROJECT = "demo-smart-home-bench"
DATABASE = "request-sync-bench"
ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_SYNC_ROUNDS", "5"))
WINDOW_S = float(os.environ.get("REQUEST_SYNC_WINDOW_S", "5"))


def light(index: int) -> dict[str, Any]:
    return {
        "id": f"light-{index}",
        "type": "action.devices.types.LIGHT",
        "traits": ["action.devices.traits.OnOff"],
        "name": {"name": f"Light {index}"},
        "willReportState": True,
    }


def main() -> None:
    logs = ROOT / ".local-stack" / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    eventarc = LocalEventarc().start()
    emulator = emulators.start_firestore(PROJECT, functions_emulator=eventarc.address, log_path=logs / "firestore.log")
    standin = StandIn(auto_link=True).start()
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.address  # this process writes the bursts
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator.address,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_DATABASE": DATABASE,
        "HOMEGRAPH_ENDPOINT": standin.url,
        "REQUEST_SYNC_WINDOW_S": str(WINDOW_S),
        "PYTHONPATH": str(ROOT),
    }
    instances = [
        start_function("sync_on_device_change", env, signature="cloudevent", log_path=logs / f"sync-{n}.log")
        for n in (1, 2)
    ]
    try:
        eventarc.register_firestore_trigger(
            emulator.url,
            PROJECT,
            "bench-request-sync",
            "users/{agentUserId}/devices/{deviceId}",
            [served.url for served in instances],
            database=DATABASE,
            retry=Retry(attempts=5),
        )
        rows = run(emulator, eventarc, standin)
    finally:
        for served in instances:
            served.stop()
        standin.stop()
        emulator.stop()
        eventarc.stop()
    print(f"\nrequest_sync (window {WINDOW_S:g} s, {ROUNDS} bursts per case)")
    print(
        f"{'case':<24} {'events':>7} {'burst s':>8} {'calls (max)':>12} {'naive':>6} {'delay median s':>15} "
        f"{'delay max s':>12}"
    )
    for r in rows:
        print(
            f"{r['case']:<24} {r['events']:>7} {r['burst_median_s']:>8.2f} {r['calls_median']:>5} ({r['calls_max']:>2})"
            f"   {r['events']:>6} {r['delay_median_s']:>15.2f} {r['delay_max_s']:>12.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "request_sync.json").write_text(json.dumps(rows, indent=2))


def run(emulator: emulators.Emulator, eventarc: LocalEventarc, standin: StandIn) -> list[dict[str, Any]]:
    from google.cloud import firestore

    from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
    from tools.cli import validated_devices

    db = firestore.Client(project=PROJECT, database=DATABASE)
    registry = FirestoreDeviceRegistry(db)
    store = FirestoreFulfillmentStore(db)
    hundred = validated_devices([light(i) for i in range(100)])

    def committed(user: str, device_id: str) -> float:
        """The commit time of the device's last write (the emulator's clock is this machine's)."""
        snapshot = db.collection("users").document(user).collection("devices").document(device_id).get()
        return float(snapshot.update_time.timestamp())

    def import_100(user: str) -> float:
        registry.add(user, hundred)
        return committed(user, "light-99")

    def add_100_one_by_one(user: str) -> float:
        for device in hundred:
            registry.add(user, [device])
        return committed(user, "light-99")

    def rename_50(user: str) -> float:
        for index in range(50):
            registry.update(user, f"light-{index}", {"name.name": f"Renamed {index} {time.time_ns()}"})
        return committed(user, "light-49")

    Burst = Callable[[str], float]
    cases: list[tuple[str, Burst | None, Burst, int]] = [
        ("100 adds, one import", None, import_100, 100),
        ("100 adds, one by one", None, add_100_one_by_one, 100),
        ("50 renames", import_100, rename_50, 50),
    ]
    # Warm-up: the instances' first event loads the HomeGraph client and google-events (a cold start, not measured).
    warm = f"bench-warm-up-{time.time_ns()}"
    store.mark_linked(warm, int(time.time() * 1000))
    registry.add(warm, hundred[:2])
    settle(eventarc, standin)
    rows = []
    for name, prepare, burst, events in cases:
        calls, delays, durations = [], [], []
        for round_index in range(ROUNDS):
            user = f"bench-{name.split(',')[0].replace(' ', '-')}-{round_index}-{time.time_ns()}"
            if prepare is not None:
                prepare(user)  # before linking: its events find the user unlinked
                settle(eventarc, standin)
            store.mark_linked(user, int(time.time() * 1000))
            before = len(standin.calls("requestSync", user))
            started = time.time()
            last_write = burst(user)
            durations.append(last_write - started)
            settle(eventarc, standin)
            made = standin.calls("requestSync", user)[before:]
            covering = [c["at"] for c in made if c["at"] > last_write]
            calls.append(len(made))
            delays.append(min(covering) - last_write if covering else float("inf"))
        rows.append(
            {
                "case": name,
                "events": events,
                "calls_median": int(statistics.median(calls)),
                "calls_max": max(calls),
                "calls": calls,
                "delay_median_s": statistics.median(delays),
                "delay_max_s": max(delays),
                "burst_median_s": statistics.median(durations),
                "window_s": WINDOW_S,
            }
        )
    return rows


def settle(eventarc: LocalEventarc, standin: StandIn) -> None:
    time.sleep(0.3)
    if not eventarc.wait_idle(timeout_s=120, quiet_s=0.5) or not standin.wait_idle(60):
        raise RuntimeError("the burst did not settle")


if __name__ == "__main__":
    main()
