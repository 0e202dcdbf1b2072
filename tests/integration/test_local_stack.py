"""The README's main command: the local stack comes up, answers SYNC with the printed token, and stops cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from functions.devtools import emulators

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.emulator


def read_until(process: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    seen = []
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError("stack output so far:\n" + "".join(seen))


def test_the_stack_serves_sync_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    try:
        emulators.firestore_jar()
    except emulators.EmulatorUnavailable as missing:
        pytest.skip(str(missing))
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": "demo-stack-test"}
    env.pop("FIRESTORE_EMULATOR_HOST", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "functions.devtools.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = read_until(process, "Ctrl-C stops everything", 120)
        token = re.search(r"Access token \(24 h\): (\S+)", output)
        url = re.search(r"fulfillment\s+(http://\S+)", output)
        assert token, output
        assert url, output
        request = urllib.request.Request(  # noqa: S310 - loopback
            url.group(1),
            data=json.dumps({"requestId": "r1", "inputs": [{"intent": "action.devices.SYNC"}]}).encode(),
            headers={"Authorization": f"Bearer {token.group(1)}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            body = json.loads(response.read())
        assert body["payload"]["agentUserId"] == "demo-user"
        assert len(body["payload"]["devices"]) >= 4

        second = subprocess.run(
            [sys.executable, "-m", "functions.devtools.stack"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert second.returncode == 1
        assert "already runs" in second.stdout
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert "Stopped." in rest
    leftovers = subprocess.run(["pgrep", "-f", "demo-stack-test"], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "processes of the stack outlived it"
