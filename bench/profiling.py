"""Where the time goes, for docs/performance.md: `python -m bench.profiling` (the Firestore emulator of its own).

imports   what a cold start imports, ours (main.py's fulfillment and the service its warm-up builds) against the
          bare app, from `python -X importtime`, grouped by package
requests  the CPU of one request in process (functions-framework's app, no HTTP server), ours against the bare
          app, and ours by part: the Firestore client, Flask and functions-framework, the project's own code
"""

from __future__ import annotations

import collections
import cProfile
import logging
import os
import pstats
import re
import subprocess
import sys
import time
from typing import Any

from bench.fulfillment import light
from bench.servers import BARE, OURS, ROOT
from tools import emulators
from tools.google import execute_request, execution, query_request, sync_request

PROJECT = "demo-smart-home-profile"
REQUESTS = int(os.environ.get("PROFILE_REQUESTS", "300"))
IMPORTS = {
    OURS: "import functions_framework, main; main.fulfillment\n"
    "from functions.fulfillment import wiring; wiring.service()",
    BARE: "import functions_framework, importlib.util as u\n"
    "spec = u.spec_from_file_location('bare_app', 'bench/bare_app.py')\n"
    "spec.loader.exec_module(u.module_from_spec(spec))",
}
LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)")


def _group(module: str) -> str:
    if module.startswith("functions."):
        return ".".join(module.split(".")[:2])
    if module.startswith(("google.", "grpc", "proto", "requests", "urllib3", "cryptography", "charset_normalizer")):
        return "google-cloud-firestore and what it loads"
    return module.split(".")[0]


def imports(env: dict[str, str]) -> None:
    for source, statement in IMPORTS.items():
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement], cwd=ROOT, env=env, capture_output=True, text=True
        )
        groups: collections.Counter[str] = collections.Counter()
        for line in done.stderr.splitlines():
            found = LINE.match(line)
            if found:
                groups[_group(found[3])] += int(found[1])
        total = sum(groups.values()) / 1000
        print(f"\nimports of {source.name}: {total:.0f} ms in all (self times, with -X importtime's own overhead)")
        for name, micros in groups.most_common(12):
            print(f"  {name:<44} {micros / 1000:7.1f} ms")


def _part(filename: str, function: str) -> str | None:
    if filename == "~" and "acquire" in function:
        return None  # a thread waiting for the emulator's answer: not CPU
    if "/functions/" in filename and "site-packages" not in filename:
        return "the project's code"
    if "firestore" in filename or "grpc" in filename or "proto" in filename or "api_core" in filename:
        return "the Firestore client (gRPC, proto-plus, snapshots)"
    if any(name in filename for name in ("flask", "werkzeug", "functions_framework")):
        return "Flask, werkzeug, functions-framework"
    if "logging" in filename or "json" in filename:
        return "logging and JSON"
    return "the standard library (copies, threads, sockets) and the rest"


def requests(env: dict[str, str]) -> None:
    os.environ.update(env)
    import functions_framework

    from functions.core import tokens
    from functions.fulfillment.store import FirestoreDeviceRegistry
    from functions.platform.firestore import FirestoreTokenStore, client
    from tools.cli import validated_devices

    db = client()
    bearer = {}
    for source in (OURS, BARE):  # each its own user, with the same devices: neither's writes change the other's
        FirestoreDeviceRegistry(db).add(source.stem, validated_devices([light(i) for i in range(1000)]))
        bearer[source] = tokens.issue(
            FirestoreTokenStore(db), tokens.ACCESS, source.stem, 3600, int(time.time() * 1000)
        )
    flip = [False]

    def execute() -> dict[str, Any]:
        flip[0] = not flip[0]
        return execute_request([([f"light-{i}" for i in range(10)], [execution("OnOff", {"on": flip[0]})])])

    cases = {
        "QUERY 1 device": lambda: query_request(["light-0"]),
        "QUERY 10 devices": lambda: query_request([f"light-{i}" for i in range(10)]),
        "EXECUTE OnOff on 10 devices": execute,
        "SYNC of 1,000 devices": sync_request,
    }
    apps = {
        source: functions_framework.create_app(target="fulfillment", source=str(source)).test_client()  # type: ignore[no-untyped-call]
        for source in (OURS, BARE)
    }
    headers = {source: {"Authorization": f"Bearer {bearer[source]}"} for source in (OURS, BARE)}
    for handler in logging.getLogger().handlers:  # ours logs a line per request: to nowhere, as bench/servers.py does
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - for the rest of the process
    for case, body in cases.items():
        rounds = max(10, REQUESTS // 30) if case.startswith("SYNC") else REQUESTS
        cpu = {}
        for source, app in apps.items():
            for _ in range(5):
                app.post("/", json=body(), headers=headers[source])
            started = time.process_time()
            for _ in range(rounds):
                app.post("/", json=body(), headers=headers[source])
            cpu[source] = (time.process_time() - started) / rounds * 1000
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(rounds):
            apps[OURS].post("/", json=body(), headers=headers[OURS])
        profiler.disable()
        parts: collections.Counter[str] = collections.Counter()
        for (filename, _, function), row in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
            part = _part(filename, function)
            if part is not None:
                parts[part] += row[2]  # own time
        whole = sum(parts.values()) or 1.0
        print(f"\n{case}: CPU per request in process, ours {cpu[OURS]:.2f} ms, bare {cpu[BARE]:.2f} ms; ours by part:")
        for part, seconds in parts.most_common():
            print(f"  {part:<58} {100 * seconds / whole:5.1f} %")


def main() -> None:
    emulator = emulators.start_firestore(PROJECT)
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator.address,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "TOKEN_CACHE_SECONDS": "0",
    }
    env.pop("PUBSUB_EMULATOR_HOST", None)
    try:
        imports(env)
        requests(env)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
