"""The README's main command: the local stack comes up, answers SYNC with the printed token, carries a device from
Firestore to the HomeGraph stand-in (Request Sync -> SYNC -> reported state), and stops everything on Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.schema_oracle import oracle
from tools import emulators, stack

ROOT = Path(__file__).resolve().parents[2]
PROJECT = f"demo-stack-test-{os.getpid()}"  # its own, so a parallel run's emulators are not taken for ours
pytestmark = pytest.mark.emulator

PORCH_LIGHT = {
    "id": "porch-light",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Porch light"},
    "willReportState": True,
}


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


def post(url: str, body: Any, token: str) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def wait_for(check: Any, what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")


def children(pid: int) -> list[int]:
    listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in listed]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_stack_round_trip_and_clean_stop(tmp_path: Path) -> None:
    try:
        emulators.firestore_jar()
        emulators.pubsub_jar()
    except emulators.EmulatorUnavailable as missing:
        pytest.skip(str(missing))
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": PROJECT, "LOCAL_STACK_DIR": str(tmp_path / "stack")}
    for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "HOMEGRAPH_ENDPOINT"):
        env.pop(name, None)

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "functions", *args],
            cwd=ROOT,
            env=cli_env,
            input=stdin,
            capture_output=True,
            text=True,
        )

    # The fulfillment's default port is taken (by us, or by whatever else holds it): the stack takes another.
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with contextlib.suppress(OSError):
        taken.bind((stack.HOST, stack.DEFAULT_PORTS["fulfillment"]))
        taken.listen()
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started: list[int] = []
    try:
        output = read_until(process, "Ctrl-C stops everything", 180)
        token = re.search(r"Access token \(24 h\): (\S+)", output)
        url = re.search(r"fulfillment\s+(http://\S+)", output)
        user_match = re.search(r"Demo user: (\S+)", output)
        assert token, output
        assert url, output
        assert user_match, output
        user = user_match.group(1)
        assert not url.group(1).endswith(f":{stack.DEFAULT_PORTS['fulfillment']}"), "a taken port is not reused"
        started = children(process.pid)
        assert len(started) >= 7, "two emulators and five functions, each a process of its own"
        recorded = json.loads((tmp_path / "stack" / "stack.json").read_text())
        standin = recorded["urls"]["homegraph stand-in"]
        cli_env = {**env, **recorded["env"]}

        # Google's SYNC with the printed token.
        body = post(url.group(1), {"requestId": "r1", "inputs": [{"intent": "action.devices.SYNC"}]}, token.group(1))
        oracle().assert_response("sync", body)
        assert body["payload"]["agentUserId"] == user
        assert len(body["payload"]["devices"]) >= 4

        # The demo user has linked: the stand-in ran SYNC and QUERY and holds the devices' states.
        linked = wait_for(lambda: get(f"{standin}/standin/users/{user}").get("states"), "the link's SYNC and QUERY")
        assert "desk-lamp" in linked

        # The round trip: a device written to Firestore -> Request Sync -> SYNC -> reported state.
        before = max((c["seq"] for c in get(f"{standin}/standin/calls")["calls"]), default=0)
        added = cli("devices", "add", "--user", user, "--file", "-", stdin=json.dumps(PORCH_LIGHT))
        assert added.returncode == 0, added.stderr

        def calls(method: str) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = get(f"{standin}/standin/calls?method={method}&agentUserId={user}")["calls"]
            return [c for c in found if c["seq"] > before]

        request_sync = wait_for(lambda: calls("requestSync"), "Request Sync after the device write")
        assert request_sync[0]["status"] == 200
        synced = wait_for(
            lambda: [c for c in calls("fulfillment.SYNC") if "porch-light" in json.dumps(c.get("response"))],
            "the SYNC Google runs on Request Sync",
        )
        oracle().assert_response("sync", synced[0]["response"])
        reported = wait_for(
            lambda: [
                c
                for c in calls("reportStateAndNotification")
                if "porch-light" in c["request"]["payload"]["devices"].get("states", {})
            ],
            "the state report of the new device",
        )
        assert reported[0]["status"] == 200
        shown = cli("google", "state", "--user", user)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["devices"]["porch-light"]["states"]["online"] is True

        # Acting as Google from the command line, with a token it minted itself.
        executed = cli("google", "execute", "--user", user, "--id", "porch-light", "--command", "OnOff",
                       "--params", '{"on": true}')  # fmt: skip
        assert executed.returncode == 0, executed.stdout + executed.stderr
        oracle().assert_response("execute", json.loads(executed.stdout))
        queried = cli("google", "query", "--user", user, "--id", "porch-light")
        assert queried.returncode == 0, queried.stderr
        assert json.loads(queried.stdout)["payload"]["devices"]["porch-light"]["on"] is True
        unknown = cli("google", "execute", "--user", user, "--id", "no-such-device", "--command", "OnOff",
                      "--params", '{"on": true}')  # fmt: skip
        assert unknown.returncode == 1, "an ERROR result is a failure"
        assert "deviceNotFound" in unknown.stdout

        second = subprocess.run(
            [sys.executable, "-m", "tools.stack"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert second.returncode == 1
        assert "already runs" in second.stdout
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=90)
        taken.close()
    assert "Stopped." in rest
    assert not (tmp_path / "stack" / "stack.json").exists()
    leftovers = [pid for pid in started if alive(pid)]
    assert leftovers == [], "processes of the stack outlived it"
    java = subprocess.run(["pgrep", "-f", f"project.*{PROJECT}"], capture_output=True, text=True).stdout.split()
    assert java == [], "an emulator outlived the stack"
