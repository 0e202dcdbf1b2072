"""Report State benchmark: the real pipeline against a naive one-call-per-message baseline, same workload, same run.

Workload (seeded): 100 users x 10 devices (8 lights, 2 air-quality sensors), 10,000 state messages over
BENCH_RS_DURATION_S (default 60 s): 500 scene bursts (a user's 8 lights set within 100 ms, 4,000 messages) and
6,000 sensor readings (each sensor every 2 s; 5 % of them a new value, the rest repeating the last one).

Set-up per variant: fresh Firestore and Pub/Sub emulators' state, the HomeGraph stand-in, the function in
BENCH_RS_INSTANCES (2) functions-framework processes of THREADS=80 (like a gen2 function with concurrency 80), and a
push relay per instance (tools/pubsub_local.PushRelay: the emulator's own push delivers only two
messages at a time). Messages are published on schedule; observedAt is the publish time.

Figures: HomeGraph calls per message; message -> stand-in latency (from publish to the start of the first call that
carries the message's value or a later one of the same device) over the messages that change something; and
whether every device's final state at the stand-in equals its true (last published) state, and Firestore's.

A/B against another commit: BENCH_RS_OURS_ROOT=<a checkout> serves "ours" from that tree's main.py (same driver,
stand-in, workload and emulators; the Firestore paths and message format are a contract, so any commit can be
compared), and BENCH_RS_VARIANTS=ours (default "ours,naive") runs only the variants named.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import RESULTS
from tools import emulators

PROJECT = "demo-smart-home-bench"
ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / ".local-stack" / "bench-logs"
USERS = int(os.environ.get("BENCH_RS_USERS", "100"))
LIGHTS = 8
SENSORS = 2
MESSAGES = int(os.environ.get("BENCH_RS_MESSAGES", "10000"))
DURATION_S = float(os.environ.get("BENCH_RS_DURATION_S", "60"))
INSTANCES = int(os.environ.get("BENCH_RS_INSTANCES", "2"))
THREADS = int(os.environ.get("BENCH_RS_THREADS", "80"))
CHANGE_RATE = 0.05
SEED = 20261121
BURST_SPREAD_S = 0.1
TOPIC = "bench-device-state"
OURS_ROOT = Path(os.environ.get("BENCH_RS_OURS_ROOT") or ROOT).resolve()
VARIANTS = [v.strip() for v in os.environ.get("BENCH_RS_VARIANTS", "ours,naive").split(",") if v.strip()]
T = "action.devices.traits."


def light(device_id: str) -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.LIGHT",
        "traits": [T + "OnOff", T + "Brightness"],
        "name": {"name": device_id},
        "willReportState": True,
        "state": {"on": False, "brightness": 0},
    }


def sensor(device_id: str) -> dict[str, Any]:
    return {
        "id": device_id,
        "type": "action.devices.types.SENSOR",
        "traits": [T + "SensorState"],
        "name": {"name": device_id},
        "willReportState": True,
        "attributes": {
            "sensorStatesSupported": [{"name": "AirQuality", "numericCapabilities": {"rawValueUnit": "AQI"}}]
        },
        "state": {"currentSensorStateData": [{"name": "AirQuality", "rawValue": 0}]},
    }


def user_name(index: int) -> str:
    return f"user-{index:03d}"


@dataclass
class Planned:
    at_s: float
    user: str
    device: str
    states: dict[str, Any]
    value: int  # the message's distinguishing value (brightness or rawValue): unique per device
    changes: bool  # whether it changes the device's state
    published: float = 0.0


def workload() -> list[Planned]:
    rng = random.Random(SEED)
    plan: list[Planned] = []
    lights_per_user = [[f"light-{n}" for n in range(LIGHTS)] for _ in range(USERS)]
    brightness: dict[tuple[str, str], list[int]] = {}
    bursts = (MESSAGES * 2 // 5) // LIGHTS
    for _ in range(bursts):
        user_index = rng.randrange(USERS)
        user = user_name(user_index)
        start = rng.uniform(0, DURATION_S - 1)
        on = rng.random() < 0.5
        for device in lights_per_user[user_index]:
            left = brightness.setdefault((user, device), rng.sample(range(1, 101), 100))
            value = left.pop()
            plan.append(
                Planned(
                    start + rng.uniform(0, BURST_SPREAD_S), user, device, {"on": on, "brightness": value}, value, True
                )
            )
    readings = MESSAGES - len(plan)
    sensors = [(user_name(u), f"sensor-{n}") for u in range(USERS) for n in range(SENSORS)]
    per_sensor = readings // len(sensors)
    extra = readings - per_sensor * len(sensors)
    interval = DURATION_S / per_sensor
    for index, (user, device) in enumerate(sensors):
        value = 0
        offset = rng.uniform(0, interval)
        for n in range(per_sensor + (1 if index < extra else 0)):
            changes = rng.random() < CHANGE_RATE
            if changes:
                value += rng.randint(1, 5)
            at = min(DURATION_S, offset + n * interval + rng.uniform(-0.2, 0.2))
            reading = {"currentSensorStateData": [{"name": "AirQuality", "rawValue": value}]}
            plan.append(Planned(max(0.0, at), user, device, reading, value, changes))
    plan.sort(key=lambda p: p.at_s)
    return plan


@dataclass
class Outcome:
    name: str
    messages: int
    calls: int
    failed_deliveries: int
    latencies: list[float]
    not_covered: int
    correct_homegraph: int
    correct_firestore: int
    devices: int
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

        return {
            "variant": self.name,
            "messages": self.messages,
            "homegraph_calls": self.calls,
            "calls_per_message": round(self.calls / self.messages, 4),
            "latency_p50_s": round(pct(0.50), 3),
            "latency_p95_s": round(pct(0.95), 3),
            "latency_max_s": round(latencies[-1], 3) if latencies else None,
            "latency_mean_s": round(statistics.mean(latencies), 3) if latencies else None,
            "changes_measured": len(latencies),
            "changes_never_reported": self.not_covered,
            "final_state_correct_at_homegraph": f"{self.correct_homegraph}/{self.devices}",
            "final_state_correct_in_firestore": f"{self.correct_firestore}/{self.devices}",
            "failed_deliveries": self.failed_deliveries,
            "wall_s": round(self.wall_s, 1),
            **self.extra,
        }


def start_function(
    target: str, source: Path, env: Mapping[str, str], index: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = emulators.free_port()
    root = source.parents[1] if source.parent.name == "bench" else source.parent
    log = open(LOG_DIR / f"report-state-{target}-{index}.log", "wb")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "functions_framework",
            f"--target={target}",
            f"--source={source}",
            "--signature-type=cloudevent",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        cwd=root,
        env={**env, "PYTHONPATH": str(root)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/", timeout=1):  # noqa: S310 - our own loopback server
                break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live children, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def seed(db: Any, standin: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Every user's devices in Firestore, the users linked in Firestore and at the stand-in, and HomeGraph holding
    their initial states, as after the full report that follows a SYNC (not counted: it precedes the run)."""
    from functions.core.device import parse_device
    from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
    from functions.platform.homegraph import HomeGraphClient
    from functions.reporting.planning import all_states
    from functions.reporting.store import REPORTED
    from tools.cli import validated_devices

    registry, store = FirestoreDeviceRegistry(db), FirestoreFulfillmentStore(db)
    initial: dict[tuple[str, str], dict[str, Any]] = {}
    linked_at = int(time.time() * 1000) - 3_600_000
    for u in range(USERS):
        user = user_name(u)
        devices = [light(f"light-{n}") for n in range(LIGHTS)] + [sensor(f"sensor-{n}") for n in range(SENSORS)]
        documents = validated_devices(devices)
        registry.add(user, documents)
        store.mark_linked(user, linked_at)
        standin.link(user, sync=False, devices=[parse_device(i, d).sync_view() for i, d in documents])
        states = {device_id: all_states(parse_device(device_id, document)) for device_id, document in documents}
        body = {"requestId": f"seed-{user}", "agentUserId": user, "payload": {"devices": {"states": states}}}
        HomeGraphClient(endpoint=standin.url).report_state_and_notification(body)
        batch = db.batch()
        for device_id, document in documents:
            initial[(user, device_id)] = dict(document["state"])
            reported = db.collection("users").document(user).collection(REPORTED).document(device_id)
            batch.set(reported, {"states": states[device_id]})
        batch.commit()
    return initial


def run_variant(
    name: str, target: str, source: Path, plan: list[Planned], env: dict[str, str], standin: Any
) -> Outcome:
    from functions.core.times import format_time_ms
    from functions.platform.firestore import client
    from tools.pubsub_local import PushRelay, create_subscription, create_topic, delete, publisher

    emulators.clear_firestore(env["FIRESTORE_EMULATOR_HOST"], PROJECT)
    standin.reset()
    db = client()
    initial = seed(db, standin)
    for planned in plan:
        planned.published = 0.0
    topic_path = create_topic(PROJECT, TOPIC)
    subscription = create_subscription(PROJECT, TOPIC, f"{TOPIC}-{name}", ack_deadline_s=60)
    functions = [start_function(target, source, env, n) for n in range(INSTANCES)]
    relays = [PushRelay(subscription, f"{url}/", concurrency=THREADS).start() for _, url in functions]
    client_ = publisher()
    firestore_pid = int(env["BENCH_FIRESTORE_PID"])
    emulator_cpu_before = cpu_seconds(firestore_pid)
    driver_cpu_before = time.process_time()
    started = time.time()
    try:
        futures = []
        last_observed: dict[tuple[str, str], int] = {}
        for planned in plan:
            wait = started + planned.at_s - time.time()
            if wait > 0:
                time.sleep(wait)
            # A device's clock gives each of its observations its own millisecond.
            observed_ms = max(int(time.time() * 1000), last_observed.get((planned.user, planned.device), 0) + 1)
            last_observed[(planned.user, planned.device)] = observed_ms
            body = {
                "agentUserId": planned.user,
                "deviceId": planned.device,
                "states": planned.states,
                "observedAt": format_time_ms(observed_ms),
            }
            planned.published = time.time()
            futures.append(client_.publish(topic_path, json.dumps(body).encode()))
        for future in futures:
            future.result(timeout=120)
        deadline = time.time() + 300
        while time.time() < deadline:
            ok = sum(n for relay in relays for status, n in relay.statuses.items() if 200 <= status < 300)
            if ok >= len(plan):
                break
            time.sleep(0.5)
        time.sleep(2.0)  # anything still in flight
        wall = time.time() - started
        failed = sum(n for relay in relays for status, n in relay.statuses.items() if not 200 <= status < 300)
        function_cpu = sum(cpu_seconds(process.pid) for process, _ in functions)
        emulator_cpu = cpu_seconds(firestore_pid) - emulator_cpu_before
        driver_cpu = time.process_time() - driver_cpu_before
    finally:
        for relay in relays:
            relay.stop()
        for process, _ in functions:
            stop(process)
        delete(PROJECT, TOPIC, [f"{TOPIC}-{name}"])
    outcome = measure(name, plan, standin, db, initial, failed, wall)
    outcome.extra = {
        "function_cpu_s": round(function_cpu, 1),
        "firestore_emulator_cpu_s": round(emulator_cpu, 1),
        # The publisher, the push relays and the stand-in, which share the machine with the function.
        "driver_cpu_s": round(driver_cpu, 1),
    }
    return outcome


def _value(device: str, states: Mapping[str, Any]) -> int | None:
    if device.startswith("light"):
        value = states.get("brightness")
    else:
        readings = states.get("currentSensorStateData") or [{}]
        value = readings[0].get("rawValue")
    return value if isinstance(value, int) else None


def measure(
    name: str,
    plan: list[Planned],
    standin: Any,
    db: Any,
    initial: Mapping[tuple[str, str], dict[str, Any]],
    failed: int,
    wall: float,
) -> Outcome:
    calls = [
        c
        for c in standin.calls("reportStateAndNotification")
        if c["status"] == 200 and not str(c["request"].get("requestId", "")).startswith("seed-")
    ]
    reported: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for call in calls:
        for device, states in call["request"]["payload"]["devices"].get("states", {}).items():
            value = _value(device, states)
            if value is not None:
                reported.setdefault((call["agentUserId"], device), []).append((call["at"], value))
    by_device: dict[tuple[str, str], list[Planned]] = {}
    for planned in plan:
        if planned.changes:
            by_device.setdefault((planned.user, planned.device), []).append(planned)
    latencies: list[float] = []
    not_covered = 0
    for key, messages in by_device.items():
        messages.sort(key=lambda p: p.published)
        position = {m.value: i for i, m in enumerate(messages)}
        seen = sorted(reported.get(key, []))
        for i, message in enumerate(messages):
            hit = next((at for at, value in seen if at >= message.published and position.get(value, -1) >= i), None)
            if hit is None:
                not_covered += 1
            else:
                latencies.append(hit - message.published)

    expected = {key: dict(state) for key, state in initial.items()}
    for planned in sorted(plan, key=lambda p: p.published):
        expected[(planned.user, planned.device)].update(planned.states)
    correct_homegraph = correct_firestore = 0
    at_standin = {user: standin.states(user) for user in {u for u, _ in expected}}
    for (user, device), state in expected.items():
        wanted = _value(device, state), state.get("on")
        held = at_standin[user].get(device, {})
        if (_value(device, held), held.get("on")) == wanted:
            correct_homegraph += 1
        elif os.environ.get("BENCH_RS_DEBUG"):
            timeline = sorted(
                [(m.published, "msg", m.value) for m in plan if (m.user, m.device) == (user, device) and m.changes]
                + [(at, "call", value) for at, value in reported.get((user, device), [])]
            )
            print(f"{name}: {user}/{device} expected {wanted}, HomeGraph has {held}", timeline[-8:])
        snap = db.collection("users").document(user).collection("devices").document(device).get()
        stored = (snap.to_dict() or {}).get("state") or {}
        if (_value(device, stored), stored.get("on")) == wanted:
            correct_firestore += 1
        elif os.environ.get("BENCH_RS_DEBUG"):
            mine = sorted((m.published, m.value, m.states) for m in plan if (m.user, m.device) == (user, device))
            print(f"{name}: {user}/{device} expected {wanted}, Firestore has {stored}", mine[-3:])
    return Outcome(
        name,
        len(plan),
        len(calls),
        failed,
        latencies,
        not_covered,
        correct_homegraph,
        correct_firestore,
        len(expected),
        wall,
    )


def main() -> None:
    from tools.homegraph_standin import StandIn

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for log in LOG_DIR.glob("report-state-*.log"):
        log.unlink()
    firestore = emulators.start_firestore(PROJECT, log_path=LOG_DIR / "report-state-firestore.log")
    pubsub = emulators.start_pubsub(PROJECT, log_path=LOG_DIR / "report-state-pubsub.log")
    standin = StandIn().start()
    os.environ.update(
        FIRESTORE_EMULATOR_HOST=firestore.address, PUBSUB_EMULATOR_HOST=pubsub.address, GOOGLE_CLOUD_PROJECT=PROJECT
    )
    env = {
        **os.environ,
        "HOMEGRAPH_ENDPOINT": standin.url,
        "THREADS": str(THREADS),
        "REPORT_WINDOW_MS": os.environ.get("REPORT_WINDOW_MS", "500"),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "BENCH_FIRESTORE_PID": str(firestore.process.pid),
    }
    plan = workload()
    outcomes = []
    try:
        if "ours" in VARIANTS:
            outcomes.append(run_variant("ours", "report_state", OURS_ROOT / "main.py", plan, env, standin))
        if "naive" in VARIANTS:
            naive = ROOT / "bench" / "naive_report_state.py"
            outcomes.append(run_variant("naive", "naive_report_state", naive, plan, env, standin))
    finally:
        standin.stop()
        pubsub.stop()
        firestore.stop()
    rows = [outcome.row() for outcome in outcomes]
    changing = sum(1 for p in plan if p.changes)
    print(
        f"\nreport_state: {USERS} users x {LIGHTS + SENSORS} devices, {len(plan)} messages ({changing} change a state)"
    )
    columns = ["variant", "homegraph_calls", "calls_per_message", "latency_p50_s", "latency_p95_s", "latency_max_s"]
    columns += ["changes_never_reported", "final_state_correct_at_homegraph", "final_state_correct_in_firestore"]
    columns += ["failed_deliveries", "wall_s", "function_cpu_s", "firestore_emulator_cpu_s", "driver_cpu_s"]
    print("  ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print("  ".join(f"{row[c]!s:>12}" for c in columns))
    print("targets: calls_per_message <= 0.1, every final state correct, latency_p95_s <= 2 (ours)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report_state.json").write_text(json.dumps({"rows": rows, "setup": setup()}, indent=2) + "\n")


def setup() -> dict[str, Any]:
    return {
        "instances": INSTANCES,
        "threads_per_instance": THREADS,
        "duration_s": DURATION_S,
        "window_ms": int(os.environ.get("REPORT_WINDOW_MS", "500")),
        "cpus": os.cpu_count(),
        "ours_root": str(OURS_ROOT),
    }
