"""Fulfillment benchmark: the real handler on the Firestore emulator against the bare Firestore client.

QUERY of 1/10/100 devices against `get_all`; EXECUTE on 10 devices against `get_all` + one batch commit; SYNC of
1,000 devices against a bare collection read; cold `import main` against a bare
`import functions_framework, google.cloud.firestore`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import paired, report, row, timed
from tools import emulators
from tools.google import execute_request, execution, query_request, sync_request

PROJECT = "demo-smart-home-bench"
ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))


def light(index: int) -> dict[str, Any]:
    return {
        "id": f"light-{index}",
        "type": "action.devices.types.LIGHT",
        "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
        "name": {"name": f"Light {index}"},
        "willReportState": True,
        "state": {"on": False, "brightness": 50},
    }


def cold_import(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    emulator = emulators.start_firestore(PROJECT)
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.address
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
    try:
        rows = run()
    finally:
        emulator.stop()
    report("fulfillment", rows)


def run() -> list[dict[str, Any]]:
    import functions_framework

    from functions.core import tokens
    from functions.fulfillment.store import FirestoreDeviceRegistry
    from functions.platform.firestore import FirestoreTokenStore, client
    from tools.cli import validated_devices

    db = client()
    registry = FirestoreDeviceRegistry(db)
    registry.add("bench-user", validated_devices([light(i) for i in range(100)]))
    registry.add("sync-user", validated_devices([light(i) for i in range(1000)]))
    now = int(time.time() * 1000)
    token = tokens.issue(FirestoreTokenStore(db), tokens.ACCESS, "bench-user", 3600, now)
    sync_token = tokens.issue(FirestoreTokenStore(db), tokens.ACCESS, "sync-user", 3600, now)
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="fulfillment", source=str(ROOT / "main.py")
    ).test_client()

    def post(body: dict[str, Any], bearer: str) -> None:
        response = app.post("/", json=body, headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 200, response.data

    devices = db.collection("users").document("bench-user").collection("devices")
    rows = []
    for count in (1, 10, 100):
        ids = [f"light-{i}" for i in range(count)]
        refs = [devices.document(i) for i in ids]
        body = query_request(ids)

        def query(body: dict[str, Any] = body) -> None:
            post(body, token)

        def bare_query(refs: list[Any] = refs) -> None:
            list(db.get_all(refs))

        ours, bare = paired(query, bare_query, ROUNDS)
        rows.append(row(f"QUERY {count} devices", ours, bare, 1.2))

    ids = [f"light-{i}" for i in range(10)]
    refs = [devices.document(i) for i in ids]
    flip = [True]

    def execute() -> None:
        flip[0] = not flip[0]
        post(execute_request([(ids, [execution("OnOff", {"on": flip[0]})])]), token)

    def bare_execute() -> None:
        flip[0] = not flip[0]
        snapshots = list(db.get_all(refs))
        batch = db.batch()
        for snap in snapshots:
            batch.update(snap.reference, {"state": {**snap.get("state"), "on": flip[0]}})
        batch.commit()

    ours, bare = paired(execute, bare_execute, ROUNDS)
    rows.append(row("EXECUTE 10 devices", ours, bare, 1.3))

    sync_devices = db.collection("users").document("sync-user").collection("devices")
    ours, bare = paired(lambda: post(sync_request(), sync_token), lambda: list(sync_devices.stream()), ROUNDS // 4)
    rows.append(row("SYNC 1,000 devices", ours, bare, 1.5))

    ours_imports, bare_imports = [], []
    for _ in range(max(5, ROUNDS // 4)):
        ours_imports.append(cold_import("import main"))
        bare_imports.append(cold_import("import functions_framework, google.cloud.firestore"))
    rows.append(row("cold import main", statistics.median(ours_imports), statistics.median(bare_imports), 1.1))
    assert timed(lambda: None) >= 0
    return rows


if __name__ == "__main__":
    main()
