"""Serving Cloud Functions locally for tests and benchmarks: in a thread (werkzeug) or in a functions-framework
process of their own (its own environment, like a deployed instance).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import emulators

ROOT = Path(__file__).resolve().parents[1]


class ThreadedApp:
    """A WSGI app (e.g. functions_framework.create_app(...)) served by werkzeug in a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        from werkzeug.serving import make_server

        self._server = make_server(host, port, app, threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="wsgi", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class FunctionProcess:
    target: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None

    def stop(self) -> None:
        emulators.stop_process_group(self.process)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def start_function(
    target: str,
    env: Mapping[str, str],
    *,
    signature: str = "http",
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: Path | None = None,
    timeout_s: float = 60,
) -> FunctionProcess:
    """Runs `target` of main.py under functions-framework in its own process; returns once it answers HTTP."""
    served = launch_function(target, env, signature=signature, host=host, port=port, log_path=log_path)
    return wait_until_serving(served, timeout_s)


def launch_function(
    target: str,
    env: Mapping[str, str],
    *,
    signature: str = "http",
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: Path | None = None,
) -> FunctionProcess:
    """Starts the process and returns at once, so several start together (`wait_until_serving` waits for one).

    The process ends with this one (emulators.guarded), and is the leader of its own process group.
    """
    port = port or emulators.free_port(host)
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        f"--target={target}",
        f"--source={ROOT / 'main.py'}",
        f"--signature-type={signature}",
        f"--host={host}",
        f"--port={port}",
    ]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        emulators.guarded(command),
        cwd=ROOT,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return FunctionProcess(target, f"http://{host}:{port}", process, log_path)


def wait_until_serving(served: FunctionProcess, timeout_s: float = 60) -> FunctionProcess:
    """Returns once the function answers HTTP; stops it and raises RuntimeError if it exits or stays silent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"{served.target} exited with {served.process.returncode}; see {served.log_path}")
        try:
            with urllib.request.urlopen(served.url + "/", timeout=1):  # noqa: S310 - our own loopback server
                return served
        except urllib.error.HTTPError:
            return served  # it answers
        except OSError:
            time.sleep(0.05)
    served.stop()
    raise RuntimeError(f"{served.target} did not answer at {served.url} within {timeout_s:.0f} s")
