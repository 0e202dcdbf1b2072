"""Load, like for like: main.py's fulfillment and the bare plain-client app (bench/bare_app.py) under the same
concurrent QUERY/EXECUTE traffic, on loopback, one after the other in interleaved phases (A B, then B A, ...).

Both are served the same way (bench/servers.py: functions-framework's gunicorn, one worker, THREADS threads) on one
Firestore emulator, with the token cache off (both read the token). Client i plays user i: its requests are 50 %
QUERY and 50 % EXECUTE (BrightnessAbsolute) of 3 of the user's 10 lights, one request after the other on a kept-alive
connection, so that no two clients write the same device. Each side has its own users with the same documents.
"""

from __future__ import annotations

import http.client
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import Paired, report
from bench.fulfillment import answered, light
from bench.servers import BARE, OURS, THREADS, Call, Server, environment, post
from tools import emulators
from tools.google import execute_request, execution, query_request

PROJECT = "demo-smart-home-load"
DEVICES_PER_USER = 10
SIDES = ("ours", "bare")


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


def _requester(server: Server, user_tokens: list[str]) -> Callable[[int, random.Random], str | None]:
    local = threading.local()

    def request(index: int, rng: random.Random) -> str | None:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        ids = [f"light-{i}" for i in rng.sample(range(DEVICES_PER_USER), 3)]
        if rng.random() < 0.5:
            body = query_request(ids)
        else:
            body = execute_request([(ids, [execution("BrightnessAbsolute", {"brightness": rng.randint(1, 100)})])])
        status, answer = post(local.connection, Call(body, user_tokens[index], answered))
        return None if answered(status, answer) else f"HTTP {status}: {str(answer)[:200]}"

    return request


def run(
    clients: int = 20,
    duration_s: float = 20.0,
    emulator_address: str | None = None,
    project: str = PROJECT,
    pairs: int = 2,
) -> dict[str, Any]:
    """`pairs` of phases (ours then bare, then bare then ours, ...), each side `duration_s` in all, on the given
    Firestore emulator (or one of its own); both sides' figures per phase and over all of their phases."""
    emulator = None
    if emulator_address is None:
        emulator = emulators.start_firestore(project)
        emulator_address = emulator.address
    servers: dict[str, Server] = {}
    try:
        from functions.core import tokens
        from functions.fulfillment.store import FirestoreDeviceRegistry
        from functions.platform.firestore import FirestoreTokenStore
        from tools.cli import validated_devices

        db = emulator_client(emulator_address, project)
        now = int(time.time() * 1000)
        user_tokens: dict[str, list[str]] = {side: [] for side in SIDES}
        for side in SIDES:
            for user in range(clients):
                devices = validated_devices([light(i) for i in range(DEVICES_PER_USER)])
                FirestoreDeviceRegistry(db).add(f"{side}-{user}", devices)
                user_tokens[side].append(
                    tokens.issue(FirestoreTokenStore(db), tokens.ACCESS, f"{side}-{user}", 3600, now)
                )
        env = environment(emulator_address, project, {"TOKEN_CACHE_SECONDS": "0"})
        sources = {"ours": OURS, "bare": BARE}
        for side in SIDES:
            probe = Call(query_request(["light-0"]), user_tokens[side][0], answered)
            servers[side] = Server.spawn(sources[side], env, probe)
        phase_s = duration_s / pairs
        phases: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        tallies = {side: _requester(servers[side], user_tokens[side]) for side in SIDES}
        for index in range(pairs):
            for side in SIDES if index % 2 == 0 else SIDES[::-1]:
                before = servers[side].cpu_seconds()
                phase = drive(clients, phase_s, tallies[side])
                phase["cpu_per_request_ms"] = (servers[side].cpu_seconds() - before) * 1000 / max(1, phase["requests"])
                phases[side].append(phase)
        return {
            "clients": clients,
            "duration_s": duration_s,
            "pairs": pairs,
            "threads": THREADS,
            "fulfillment": _overall(phases["ours"]),
            "bare": _overall(phases["bare"]),
            "phases": phases,
        }
    finally:
        for server in servers.values():
            server.stop()
        if emulator is not None:
            emulator.stop()


def _overall(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """All phases of one side together: sums, and the medians of the phases' percentiles."""
    return {
        "requests": sum(p["requests"] for p in phases),
        "errors": sum(p["errors"] for p in phases),
        "throughput_rps": statistics.median(p["throughput_rps"] for p in phases),
        "p50_ms": statistics.median(p["p50_ms"] for p in phases),
        "p99_ms": statistics.median(p["p99_ms"] for p in phases),
        "first_errors": [e for p in phases for e in p["first_errors"]][:3],
    }


def main() -> None:
    clients = int(os.environ.get("LOAD_CLIENTS", "20"))
    duration = float(os.environ.get("LOAD_SECONDS", "60"))
    pairs = int(os.environ.get("LOAD_PAIRS", "6"))
    result = run(clients, duration, pairs=pairs)
    ours, bare = result["phases"]["ours"], result["phases"]["bare"]
    cpu = (
        statistics.median(p["cpu_per_request_ms"] for p in ours) / 1000,
        statistics.median(p["cpu_per_request_ms"] for p in bare) / 1000,
    )
    figures = [
        Paired(
            f"{clients} clients: requests/s",
            [p["throughput_rps"] for p in ours],
            [p["throughput_rps"] for p in bare],
            1.0,
            unit="req/s",
            higher_is_better=True,
            cpu=cpu,
        ),
        Paired(
            f"{clients} clients: p50 latency",
            [p["p50_ms"] / 1000 for p in ours],
            [p["p50_ms"] / 1000 for p in bare],
            None,
        ),
        Paired(
            f"{clients} clients: p99 latency",
            [p["p99_ms"] / 1000 for p in ours],
            [p["p99_ms"] / 1000 for p in bare],
            1.0,
        ),
    ]
    print(
        f"\nload: {clients} concurrent clients, {pairs} phase pairs of {duration / pairs:.0f} s per side, "
        f"50 % QUERY / 50 % EXECUTE of 3 devices, {THREADS} server threads, token cache off"
    )
    for side, name in (("fulfillment", "ours"), ("bare", "bare")):
        row = result[side]
        print(f"  {name}: {row['requests']} requests, {row['errors']} errors {row['first_errors']}")
    setup = {key: result[key] for key in ("clients", "duration_s", "pairs", "threads")}
    report("load", figures, {**setup, "phases": result["phases"]})


if __name__ == "__main__":
    main()
