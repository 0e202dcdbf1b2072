"""Load: the fulfillment under concurrent QUERY/EXECUTE traffic from a second process, on loopback only.

The fulfillment runs under functions-framework (gunicorn, as Cloud Run runs it) in its own process on the Firestore
emulator; this process drives it with N concurrent clients for a bounded time, then drives the bare Firestore client
with the same concurrency doing the minimum I/O of each request (get_all; get_all + one batch commit), so both
sets of figures come from the same run on the same machine.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fulfillment import light
from tools import emulators
from tools.google import execute_request, execution, query_request

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "demo-smart-home-load"
USERS = 20
DEVICES_PER_USER = 10


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error:
                self.errors.append(error)

    def summary(self, duration_s: float) -> dict[str, Any]:
        ordered = sorted(self.latencies) or [0.0]

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

        return {
            "requests": len(self.latencies),
            "errors": len(self.errors),
            "error_rate": len(self.errors) / max(1, len(self.latencies)),
            "throughput_rps": len(self.latencies) / duration_s,
            "p50_ms": statistics.median(ordered) * 1000,
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "first_errors": self.errors[:3],
        }


def drive(clients: int, duration_s: float, request: Callable[[int, random.Random], str | None]) -> dict[str, Any]:
    """`clients` threads call `request(client, rng)` (None = success, else an error text) until time is up."""
    tally = Tally()
    stop_at = time.monotonic() + duration_s

    def client(index: int) -> None:
        rng = random.Random(index)
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            try:
                error = request(index, rng)
            except Exception as problem:
                error = repr(problem)
            tally.add(time.perf_counter() - start, error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally.summary(time.monotonic() - started)


class Server:
    """The fulfillment in its own functions-framework process."""

    def __init__(self, env: dict[str, str], threads: int) -> None:
        self.port = emulators.free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--target=fulfillment",
                f"--source={ROOT / 'main.py'}",
                "--host=127.0.0.1",
                f"--port={self.port}",
            ],
            cwd=ROOT,
            # As many request threads as clients, like a Cloud Run instance with that concurrency.
            env={**env, "GUNICORN_LOG_LEVEL": "error", "THREADS": str(threads)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=1).request("GET", "/")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the fulfillment did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def emulator_client(address: str, project: str) -> Any:
    """A Firestore client of its own on the given emulator, leaving the process environment as it was."""
    from google.cloud import firestore

    saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = address
    try:
        return firestore.Client(project=project)
    finally:
        if saved is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = saved


def run(
    clients: int = 20, duration_s: float = 10.0, emulator_address: str | None = None, project: str = PROJECT
) -> dict[str, Any]:
    """Runs the load on the given Firestore emulator (or one of its own) and returns both sets of figures."""
    emulator = None
    if emulator_address is None:
        emulator = emulators.start_firestore(project)
        emulator_address = emulator.address
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": emulator_address, "GOOGLE_CLOUD_PROJECT": project}
    server = None
    try:
        from functions.core import tokens
        from functions.fulfillment.store import FirestoreDeviceRegistry
        from functions.platform.firestore import FirestoreTokenStore
        from tools.cli import validated_devices

        db = emulator_client(emulator_address, project)
        now = int(time.time() * 1000)
        user_tokens = {}
        for user in range(USERS):
            devices = validated_devices([light(i) for i in range(DEVICES_PER_USER)])
            FirestoreDeviceRegistry(db).add(f"user-{user}", devices)
            user_tokens[user] = tokens.issue(FirestoreTokenStore(db), tokens.ACCESS, f"user-{user}", 3600, now)
        server = Server(env, clients)
        local = threading.local()

        def fulfillment_request(index: int, rng: random.Random) -> str | None:
            if not hasattr(local, "connection"):
                local.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            user = rng.randrange(USERS)
            ids = [f"light-{i}" for i in rng.sample(range(DEVICES_PER_USER), 3)]
            if rng.random() < 0.5:
                body = query_request(ids)
            else:
                body = execute_request([(ids, [execution("BrightnessAbsolute", {"brightness": rng.randint(1, 100)})])])
            local.connection.request(
                "POST",
                "/",
                json.dumps(body),
                {"Authorization": f"Bearer {user_tokens[user]}", "Content-Type": "application/json"},
            )
            response = local.connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                return f"HTTP {response.status}"
            if "commands" in answer["payload"]:
                failed = [c for c in answer["payload"]["commands"] if c["status"] != "SUCCESS"]
                return f"EXECUTE {failed}" if failed else None
            failed = [d for d in answer["payload"]["devices"].values() if d["status"] != "SUCCESS"]
            return f"QUERY {failed}" if failed else None

        def bare_request(index: int, rng: random.Random) -> str | None:
            user = rng.randrange(USERS)
            devices = db.collection("users").document(f"user-{user}").collection("devices")
            refs = [devices.document(f"light-{i}") for i in rng.sample(range(DEVICES_PER_USER), 3)]
            snapshots = list(db.get_all(refs))
            if rng.random() >= 0.5:
                batch = db.batch()
                level = rng.randint(1, 100)
                for snap in snapshots:
                    batch.update(snap.reference, {"state": {**snap.get("state"), "brightness": level}})
                batch.commit()
            return None

        ours = drive(clients, duration_s, fulfillment_request)
        bare = drive(clients, duration_s, bare_request)
        return {"clients": clients, "duration_s": duration_s, "fulfillment": ours, "bare_firestore": bare}
    finally:
        if server is not None:
            server.stop()
        if emulator is not None:
            emulator.stop()


def main() -> None:
    clients = int(os.environ.get("LOAD_CLIENTS", "20"))
    duration = float(os.environ.get("LOAD_SECONDS", "20"))
    result = run(clients, duration)
    print(f"\nload: {clients} concurrent clients, {duration:.0f} s each, 50 % QUERY / 50 % EXECUTE of 3 devices")
    print(f"{'':<16} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name in ("fulfillment", "bare_firestore"):
        row = result[name]
        print(
            f"{name:<16} {row['requests']:>9} {row['errors']:>7} {row['throughput_rps']:>8.1f} "
            f"{row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['p99_ms']:>8.1f}"
        )
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "load.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
