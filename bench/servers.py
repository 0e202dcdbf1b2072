"""Both fulfillments served the same way for the benchmarks: functions-framework's own server (gunicorn, one
worker, THREADS threads, as Cloud Functions runs it), each in a process of its own, on loopback.

`OURS` is main.py's fulfillment, `BARE` the plain-client baseline (bench/bare_app.py); only `--source` differs.
`Server.spawn` returns once the server gave its first good answer to `probe`, and records how long that took
from the process spawn (the cold start as a caller sees it).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import emulators

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "main.py"
BARE = ROOT / "bench" / "bare_app.py"
NAMES = {OURS: "ours", BARE: "bare"}
# The fulfillment's max_instance_request_concurrency in infra/functions.tf: the most requests an instance gets.
THREADS = 16

# (status, body) of an answer -> whether it is the good answer expected.
Check = Callable[[int, Any], bool]


@dataclass(frozen=True)
class Call:
    """One POST to a fulfillment: body, bearer token and what a good answer looks like."""

    body: Mapping[str, Any]
    bearer: str
    good: Check


def ok(status: int, body: Any) -> bool:
    return status == 200


def post(connection: http.client.HTTPConnection, call: Call) -> tuple[int, Any]:
    payload = json.dumps(call.body)
    headers = {"Authorization": f"Bearer {call.bearer}", "Content-Type": "application/json"}
    connection.request("POST", "/", payload, headers)
    response = connection.getresponse()
    data = response.read()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


class Server:
    def __init__(self, source: Path, process: subprocess.Popen[bytes], port: int, cold_start_s: float) -> None:
        self.source = source
        self.name = NAMES.get(source, source.stem)
        self.process = process
        self.port = port
        self.cold_start_s = cold_start_s
        self._connection: http.client.HTTPConnection | None = None

    @classmethod
    def spawn(
        cls, source: Path, env: Mapping[str, str], probe: Call, threads: int = THREADS, timeout_s: float = 60
    ) -> Server:
        port = emulators.free_port()
        command = [
            sys.executable,
            "-m",
            "functions_framework",
            "--target=fulfillment",
            f"--source={source}",
            "--host=127.0.0.1",
            f"--port={port}",
        ]
        settings = {**env, "GUNICORN_LOG_LEVEL": "error", "THREADS": str(threads)}
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=settings,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{source.name} exited with {process.returncode}")
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                status, body = post(connection, probe)
            except OSError:
                connection.close()
                time.sleep(0.005)
                continue
            if not probe.good(status, body):
                emulators.stop_process_group(process)
                raise RuntimeError(f"{source.name} answered the probe {status}: {str(body)[:300]}")
            server = cls(source, process, port, time.perf_counter() - started)
            server._connection = connection
            return server
        emulators.stop_process_group(process)
        raise RuntimeError(f"{source.name} gave no good answer within {timeout_s:.0f} s")

    def connection(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return self._connection

    def call(self, call: Call) -> float:
        """Seconds for one good answer over this server's kept-alive connection (raises on a bad one)."""
        started = time.perf_counter()
        try:
            status, body = post(self.connection(), call)
        except (OSError, http.client.HTTPException):
            self._connection = None  # the server closed an idle connection: once more on a new one
            status, body = post(self.connection(), call)
        elapsed = time.perf_counter() - started
        if not call.good(status, body):
            raise RuntimeError(f"{self.name} answered {status}: {str(body)[:300]}")
        return elapsed

    def cpu_seconds(self) -> float:
        """CPU time the server's processes have used so far (gunicorn's master and its worker, all threads):
        the work a request costs the server, which the machine's other load does not stretch as it does latency."""
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [self.process.pid]
        try:
            pids += [
                int(pid)
                for pid in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            ]
            total = 0
            for pid in pids:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime and stime, in clock ticks
        except (OSError, ValueError):
            return float("nan")  # not Linux, or the process is gone
        return total / ticks

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        emulators.stop_process_group(self.process)


def environment(emulator_address: str, project: str, settings: Mapping[str, str]) -> dict[str, str]:
    """The servers' environment: the emulator, the project, `settings`, and no Pub/Sub unless `settings` says."""
    env = {key: value for key, value in os.environ.items() if key != "PUBSUB_EMULATOR_HOST"}
    env.update(FIRESTORE_EMULATOR_HOST=emulator_address, GOOGLE_CLOUD_PROJECT=project)
    env.update(settings)
    return env
