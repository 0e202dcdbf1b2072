"""Webhook benchmark: EXECUTE on 10 "webhook" devices against the same EXECUTE on 10 "virtual" devices, same run.

The maker's endpoint is a local HTTP server that answers every command SUCCESS at once, so what is measured is the
backend's own price of a webhook device: building and signing the call, one HTTP round trip on loopback (a new
connection each time, as urllib makes it), checking the answer against the traits. Both EXECUTEs go through
functions-framework's Flask app with the real handler on the Firestore emulator, and both write the 10 new states
in one batch; interleaved rounds, the median of the paired ratios (bench/common.py). Target: a ratio of at most 1.3.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import Paired, interleaved, report, timed
from tools import emulators
from tools.google import execute_request, execution

PROJECT = "demo-smart-home-bench-webhook"
ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))
SECRET = "bench-webhook-secret"


class AtOnce(BaseHTTPRequestHandler):
    """The maker's endpoint: every command SUCCESS, at once."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        call = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        body = json.dumps(
            {"results": [{"commandId": c["commandId"], "status": "SUCCESS"} for c in call["commands"]]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def light(index: int, backend: str) -> dict[str, Any]:
    return {
        "id": f"{backend}-light-{index}",
        "type": "action.devices.types.LIGHT",
        "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
        "name": {"name": f"Light {index}"},
        "willReportState": True,
        "state": {"on": False, "brightness": 50},
        "backend": backend,
    }


def main() -> None:
    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), AtOnce)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    emulator = emulators.start_firestore(PROJECT)
    os.environ.update(
        FIRESTORE_EMULATOR_HOST=emulator.address,
        GOOGLE_CLOUD_PROJECT=PROJECT,
        WEBHOOK_URL=f"http://127.0.0.1:{endpoint.server_address[1]}/smarthome",
        WEBHOOK_SECRET=SECRET,
    )
    try:
        figures = run()
    finally:
        emulator.stop()
        endpoint.shutdown()
    report("webhook", figures, {"devices": 10, "endpoint": "loopback, answers at once", "rounds": ROUNDS})


def run() -> list[Paired]:
    import functions_framework

    from functions.core import tokens
    from functions.fulfillment.store import FirestoreDeviceRegistry
    from functions.platform.firestore import FirestoreTokenStore, client
    from tools.cli import validated_devices

    db = client()
    devices = [light(i, backend) for backend in ("webhook", "virtual") for i in range(10)]
    FirestoreDeviceRegistry(db).add("bench-user", validated_devices(devices))
    token = tokens.issue(FirestoreTokenStore(db), tokens.ACCESS, "bench-user", 3600, int(time.time() * 1000))
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="fulfillment", source=str(ROOT / "main.py")
    ).test_client()
    flips = {"webhook": True, "virtual": True}

    def execute(backend: str) -> None:
        flips[backend] = not flips[backend]
        ids = [f"{backend}-light-{i}" for i in range(10)]
        body = execute_request([(ids, [execution("OnOff", {"on": flips[backend]})])])
        answer = app.post("/", json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.data
        results = answer.get_json()["payload"]["commands"]
        assert [r["status"] for r in results] == ["SUCCESS"], results  # one group: every device succeeded

    ours, bare = interleaved(
        lambda: timed(lambda: execute("webhook")), lambda: timed(lambda: execute("virtual")), ROUNDS
    )
    return [Paired("EXECUTE 10 webhook devices (bare: 10 virtual)", ours, bare, 1.3)]


if __name__ == "__main__":
    main()
