"""Fulfillment benchmark, like for like: main.py's fulfillment against the bare plain-client app (bench/bare_app.py),
both served by functions-framework's own server in processes of their own (bench/servers.py), over HTTP, on one
Firestore emulator (and a Pub/Sub emulator for SYNC's full-report request).

Cases, each in interleaved paired rounds (A B / B A): QUERY of 1, 10 and 100 devices; EXECUTE OnOff on 10; SYNC of
1,000; and, for information, QUERY of 10 devices that all changed behind the fulfillment's back since its last read
(the read it then makes again), and SYNC of 1,000 of which 10 changed so. Cold start: process spawn to the
first good QUERY answer, both alike.

The token cache is off (TOKEN_CACHE_SECONDS=0): both read the token on every request. Each side has its own users
with the same documents, so that neither's writes change what the other reads.
BENCH_ROUNDS (default 40) rounds per case, a quarter of them for SYNC; BENCH_COLD_ROUNDS (default 10) spawns each.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import Paired, interleaved, report
from bench.servers import BARE, OURS, THREADS, Call, Server, environment
from tools import emulators
from tools.google import execute_request, execution, query_request, sync_request

PROJECT = "demo-smart-home-bench"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))
COLD_ROUNDS = int(os.environ.get("BENCH_COLD_ROUNDS", "10"))
SIDES = ("ours", "bare")


def light(index: int) -> dict[str, Any]:
    return {
        "id": f"light-{index}",
        "type": "action.devices.types.LIGHT",
        "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
        "name": {"name": f"Light {index}"},
        "willReportState": True,
        "state": {"on": False, "brightness": 50},
    }


def answered(status: int, body: Any) -> bool:
    """A good answer: 200, and every device or command in it a success."""
    if status != 200 or not isinstance(body, dict):
        return False
    payload = body.get("payload", {})
    if "devices" in payload and isinstance(payload["devices"], dict):
        return all(device.get("status") == "SUCCESS" for device in payload["devices"].values())
    if "commands" in payload:
        return all(command.get("status") == "SUCCESS" for command in payload["commands"])
    return isinstance(payload.get("devices"), list)


def seed(db: Any) -> dict[str, dict[str, str]]:
    """Each side's users (100 lights; 1,000 for SYNC) and their tokens: {side: {"devices"|"sync": token}}."""
    from functions.core import tokens
    from functions.fulfillment.store import FirestoreDeviceRegistry
    from functions.platform.firestore import FirestoreTokenStore
    from tools.cli import validated_devices

    registry, token_store = FirestoreDeviceRegistry(db), FirestoreTokenStore(db)
    now = int(time.time() * 1000)
    issued: dict[str, dict[str, str]] = {}
    for side in SIDES:
        registry.add(f"{side}-user", validated_devices([light(i) for i in range(100)]))
        registry.add(f"{side}-sync", validated_devices([light(i) for i in range(1000)]))
        issued[side] = {
            "devices": tokens.issue(token_store, tokens.ACCESS, f"{side}-user", 24 * 3600, now),
            "sync": tokens.issue(token_store, tokens.ACCESS, f"{side}-sync", 24 * 3600, now),
        }
    return issued


def main() -> None:
    firestore_emulator = emulators.start_firestore(PROJECT)
    pubsub_emulator = emulators.start_pubsub(PROJECT)
    try:
        figures, setup = run(firestore_emulator.address, pubsub_emulator.address)
    finally:
        pubsub_emulator.stop()
        firestore_emulator.stop()
    report("fulfillment", figures, setup)


def run(firestore_address: str, pubsub_address: str) -> tuple[list[Paired], dict[str, Any]]:
    from bench.load import emulator_client
    from functions.platform import config
    from tools.pubsub_local import create_topic

    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub_address
    create_topic(PROJECT, config.state_topic())
    db = emulator_client(firestore_address, PROJECT)
    issued = seed(db)
    env = environment(firestore_address, PROJECT, {"TOKEN_CACHE_SECONDS": "0", "PUBSUB_EMULATOR_HOST": pubsub_address})
    probes = {side: Call(query_request(["light-0"]), issued[side]["devices"], answered) for side in SIDES}
    sources = {"ours": OURS, "bare": BARE}

    # Cold start: spawn -> first good answer, interleaved; the servers of the last round stay up for the rest.
    spawned: dict[str, list[float]] = {side: [] for side in SIDES}
    servers: dict[str, Server] = {}
    for index in range(COLD_ROUNDS):
        for side in SIDES if index % 2 == 0 else SIDES[::-1]:
            server = Server.spawn(sources[side], env, probes[side])
            spawned[side].append(server.cold_start_s)
            if index < COLD_ROUNDS - 1:
                server.stop()
            else:
                servers[side] = server
    figures = [Paired("cold start: spawn -> first good QUERY", spawned["ours"], spawned["bare"], 1.0)]
    try:
        figures += steady(servers, issued, db)
    finally:
        for server in servers.values():
            server.stop()
    setup = {"rounds": ROUNDS, "cold_rounds": COLD_ROUNDS, "threads": THREADS, "token_cache_seconds": 0}
    return figures, setup


def steady(servers: dict[str, Server], issued: dict[str, dict[str, str]], db: Any) -> list[Paired]:
    def on(side: str, body: dict[str, Any], user: str = "devices") -> Any:
        call = Call(body, issued[side][user], answered)
        return lambda: servers[side].call(call)

    def paired(case: str, target: float | None, ours: Any, bare: Any, rounds: int = ROUNDS, warmup: int = 3) -> Paired:
        """Interleaved rounds of the case, with each server's CPU per request over them."""
        before = {side: servers[side].cpu_seconds() for side in SIDES}
        ours_s, bare_s = interleaved(ours, bare, rounds, warmup)
        cpu = [(servers[side].cpu_seconds() - before[side]) / (rounds + warmup) for side in SIDES]
        return Paired(case, ours_s, bare_s, target, cpu=(cpu[0], cpu[1]))

    figures = []
    for count in (1, 10, 100):
        body = query_request([f"light-{i}" for i in range(count)])
        figures.append(
            paired(f"QUERY {count} device{'s' if count > 1 else ''}", 1.0, on("ours", body), on("bare", body))
        )

    ids = [f"light-{i}" for i in range(10)]
    flips = {side: [False] for side in SIDES}

    def execute(side: str) -> Any:
        def run() -> float:
            flips[side][0] = not flips[side][0]
            body = execute_request([(ids, [execution("OnOff", {"on": flips[side][0]})])])
            return float(on(side, body)())

        return run

    figures.append(paired("EXECUTE OnOff on 10 devices", 1.0, execute("ours"), execute("bare")))

    sync = sync_request()
    sync_rounds = max(8, ROUNDS // 4)
    figures.append(
        paired("SYNC of 1,000 devices", 1.0, on("ours", sync, "sync"), on("bare", sync, "sync"), sync_rounds, 2)
    )

    # Every device written elsewhere before each round (outside the timing): ours reads them again, whole.
    level = [1]

    def after_changing(side: str, user_key: str, call: Any) -> Any:
        """`call` (timed) after the user's 10 devices `ids` were written elsewhere (not timed)."""

        def run() -> float:
            level[0] = level[0] % 100 + 1
            batch = db.batch()
            devices = db.collection("users").document(f"{side}-{user_key}").collection("devices")
            for device_id in ids:
                batch.update(devices.document(device_id), {"state.brightness": level[0]})
            batch.commit()
            return float(call())

        return run

    def query_changed(side: str) -> Any:
        return after_changing(side, "user", on(side, query_request(ids)))

    def sync_changed(side: str) -> Any:
        return after_changing(side, "sync", on(side, sync, "sync"))

    figures.append(
        paired("QUERY 10 devices, all changed since (info)", None, query_changed("ours"), query_changed("bare"))
    )
    figures.append(
        paired(
            "SYNC of 1,000, 10 changed since (info)", None, sync_changed("ours"), sync_changed("bare"), sync_rounds, 2
        )
    )
    return figures


if __name__ == "__main__":
    main()
