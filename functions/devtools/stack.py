"""The whole stack on this machine, in one command (`make up`): emulators, functions, demo data.

Every piece prefers its default port (the ones firebase.json names) and takes a free one when that is taken;
the ports in use are printed. Ctrl-C stops everything this command started. A second start while one runs says
so and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.devtools import emulators

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".local-stack"
STATE_FILE = STATE_DIR / "stack.json"
PROJECT = os.environ.get("GOOGLE_CLOUD_PROJECT", "demo-smart-home")
HOST = "127.0.0.1"
DEMO_USER = "demo-user"
DEMO_DEVICES = Path(__file__).resolve().parent / "demo" / "devices.json"

# Default ports; firebase.json names the same for the emulators.
DEFAULT_PORTS = {
    "firestore": 8080,
    "pubsub": 8085,
    "fulfillment": 8081,
    "authorize": 8082,
    "token": 8083,
    "sync_on_device_change": 8084,
    "report_state": 8086,
    "homegraph": 8090,
}


def pick_port(name: str) -> int:
    preferred = DEFAULT_PORTS.get(name)
    if preferred and emulators.port_is_free(preferred, HOST):
        return preferred
    return emulators.free_port(HOST)


@dataclass
class Stack:
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    emulators: list[emulators.Emulator] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def log_path(self, name: str) -> Path:
        STATE_DIR.mkdir(exist_ok=True)
        return STATE_DIR / f"{name}.log"

    def serve_function(self, target: str, signature: str = "http") -> str:
        """Runs one Cloud Function in its own functions-framework process; returns its URL."""
        port = pick_port(target)
        command = [
            sys.executable,
            "-m",
            "functions_framework",
            f"--target={target}",
            f"--source={ROOT / 'main.py'}",
            f"--signature-type={signature}",
            f"--host={HOST}",
            f"--port={port}",
        ]
        log = open(self.log_path(target), "ab")  # noqa: SIM115 - owned by the child process
        self.processes[target] = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://{HOST}:{port}"
        wait_for_http(url, self.processes[target], target)
        self.urls[target] = url
        return url

    def stop(self) -> None:
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            del self.processes[name]
        for emulator in reversed(self.emulators):
            emulator.stop()
        self.emulators.clear()
        with contextlib.suppress(FileNotFoundError):
            STATE_FILE.unlink()


def wait_for_http(url: str, process: subprocess.Popen[bytes], name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {STATE_DIR / (name + '.log')}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own loopback server
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer at {url} within {timeout_s:.0f} s")


def already_running() -> dict[str, Any] | None:
    try:
        state = json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return dict(state)


# The pieces, in start order. Each takes the stack and starts or prepares what it names.


def start_firestore(stack: Stack) -> None:
    emulator = emulators.start_firestore(
        PROJECT, HOST, pick_port("firestore"), log_path=stack.log_path("firestore-emulator")
    )
    stack.emulators.append(emulator)
    stack.env.update(FIRESTORE_EMULATOR_HOST=emulator.address, GOOGLE_CLOUD_PROJECT=PROJECT)
    os.environ.update(FIRESTORE_EMULATOR_HOST=emulator.address, GOOGLE_CLOUD_PROJECT=PROJECT)
    stack.urls["firestore emulator"] = emulator.url


def start_fulfillment(stack: Stack) -> None:
    stack.serve_function("fulfillment")


def seed_demo(stack: Stack) -> None:
    from functions.adapters.firestore import FirestoreDeviceRegistry, FirestoreFulfillmentStore, FirestoreTokenStore
    from functions.cli import validated_devices
    from functions.domain import tokens

    FirestoreDeviceRegistry().add(DEMO_USER, validated_devices(json.loads(DEMO_DEVICES.read_text())), replace=True)
    now = int(time.time() * 1000)
    token = tokens.issue(FirestoreTokenStore(), tokens.ACCESS, DEMO_USER, 24 * 3600, now)
    FirestoreFulfillmentStore().mark_linked(DEMO_USER, now)
    stack.env["DEMO_ACCESS_TOKEN"] = token
    url = stack.urls["fulfillment"]
    execute = {
        "requestId": "r2",
        "inputs": [
            {
                "intent": "action.devices.EXECUTE",
                "payload": {
                    "commands": [
                        {
                            "devices": [{"id": "desk-lamp"}],
                            "execution": [{"command": "action.devices.commands.OnOff", "params": {"on": True}}],
                        }
                    ]
                },
            }
        ],
    }
    stack.notes += [
        f"Demo user: {DEMO_USER} (devices from {DEMO_DEVICES.relative_to(ROOT)})",
        f"Access token (24 h): {token}",
        "",
        "SYNC, the way Google asks:",
        f"  curl -s {url} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
        '    -d \'{"requestId": "r1", "inputs": [{"intent": "action.devices.SYNC"}]}\'',
        "Turn the lamp on:",
        f"  curl -s {url} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
        f"    -d '{json.dumps(execute)}'",
        "Operators' CLI against this stack:",
        f"  FIRESTORE_EMULATOR_HOST={stack.env['FIRESTORE_EMULATOR_HOST']} GOOGLE_CLOUD_PROJECT={PROJECT} \\",
        f"    .venv/bin/python -m functions devices list --user {DEMO_USER}",
    ]


PIECES: list[Callable[[Stack], None]] = [start_firestore, start_fulfillment, seed_demo]


def main() -> int:
    running = already_running()
    if running:
        print(f"The local stack already runs (pid {running['pid']}); its URLs:")
        for name, url in running.get("urls", {}).items():
            print(f"  {name:<24} {url}")
        print("Stop it with Ctrl-C in its terminal, then start again.")
        return 1
    STATE_DIR.mkdir(exist_ok=True)
    STATE_FILE.write_text(json.dumps({"pid": os.getpid(), "urls": {}}))
    stack = Stack()

    def interrupt(signum: int, _frame: Any) -> None:
        # Only the first Ctrl-C or SIGTERM counts: a second one must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        for piece in PIECES:
            piece(stack)
        STATE_FILE.write_text(json.dumps({"pid": os.getpid(), "urls": stack.urls}))
        print(f"\nLocal stack is up (project {PROJECT}). Logs in {STATE_DIR.relative_to(ROOT)}")
        for name, url in stack.urls.items():
            print(f"  {name:<24} {url}")
        print()
        print("\n".join(stack.notes))
        print("\nCtrl-C stops everything.", flush=True)
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        failed = [name for name, p in stack.processes.items() if p.poll() is not None]
        print(f"{', '.join(failed)} stopped unexpectedly; see {STATE_DIR.relative_to(ROOT)}/*.log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...")
        return 0
    except (RuntimeError, emulators.EmulatorUnavailable) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("Stopped.")


if __name__ == "__main__":
    raise SystemExit(main())
