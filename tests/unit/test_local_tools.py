"""The local stack's tools without emulators: the port probe, children that die with their parent, the record of a
stack that is gone, and the operators' CLI refusing to guess where to act (issue 15's defects, each reproduced)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import emulators, local_stack

ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int, timeout_s: float = 10) -> bool:
    """Whether the process ends within the timeout (a zombie of ours counts as gone: it runs no more)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if local_stack.command_line(pid) is None:
            return True
        time.sleep(0.05)
    return False


# The port probe


def test_a_port_in_time_wait_is_free_and_a_listening_one_is_not() -> None:
    """Restarting within a minute moved the stack's ports: connections the server side closed leave the port in
    TIME_WAIT, and a probe without SO_REUSEADDR took it for taken (the servers themselves bind with it)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert not emulators.port_is_free(port), "a port with a listener is taken"
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first: its side of the connection waits in TIME_WAIT
    time.sleep(0.1)
    client.close()
    server.close()
    listed = subprocess.run(["ss", "-tan", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
    if "TIME-WAIT" not in listed:
        pytest.skip(f"the connection on {port} is not in TIME_WAIT here: {listed!r}")
    assert emulators.port_is_free(port), "a port whose connections wait in TIME_WAIT is free for a new server"


# Children that end with the process that started them


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_child_ends_when_its_parent_is_killed_outright() -> None:
    """Closing the terminal (or kill -9) left the emulators and functions running: they are in sessions of their
    own, so nothing told them. Now the kernel does (a parent-death signal, kept across the command's exec)."""
    parent_code = (
        "import subprocess, sys, time\n"
        "from tools import emulators\n"
        "child = subprocess.Popen(emulators.guarded(['sleep', '120']), start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while local_stack.command_line(child) != "sleep 120" and time.monotonic() < deadline:
            time.sleep(0.02)  # the guard is still to exec the command
        assert local_stack.command_line(child) == "sleep 120"
        parent.kill()
        parent.wait(timeout=10)
        assert gone(child), "the child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


# The record of a stack that is gone


def test_a_stale_record_is_told_from_a_running_stack_and_its_leftovers_are_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_STACK_DIR", str(tmp_path))
    leftover = subprocess.Popen(["sleep", "120"], start_new_session=True)
    unrelated = subprocess.Popen(["sleep", "121"], start_new_session=True)
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        record = {
            "pid": dead.pid,  # the stack's pid: no such process any more
            "urls": {"fulfillment": "http://127.0.0.1:8081"},
            "children": [
                {"pid": leftover.pid, "command": "sleep 120"},
                # a recorded pid whose process is not the one recorded (taken since): left alone
                {"pid": unrelated.pid, "command": "java -jar cloud-pubsub-emulator.jar"},
            ],
        }
        local_stack.record_path().write_text(json.dumps(record))
        assert local_stack.running() is None
        assert local_stack.stale() == record
        assert local_stack.end_leftovers(record) == [leftover.pid]
        leftover.wait(timeout=10)
        assert unrelated.poll() is None
        # A live process that is not a stack (its pid reused) does not make the record a running stack's.
        local_stack.record_path().write_text(json.dumps({**record, "pid": unrelated.pid}))
        assert local_stack.running() is None
        assert local_stack.stale() is not None
    finally:
        for process in (leftover, unrelated):
            if process.poll() is None:
                process.kill()
                process.wait()


# The CLI: where it acts


def run_cli(*args: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "functions", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def bare_environment(stack_dir: Path) -> dict[str, str]:
    """This machine's environment without anything that names a project or an emulator, and no stack."""
    names = (*local_stack.SHARED_ENV, "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    return {**env, "LOCAL_STACK_DIR": str(stack_dir)}


@pytest.mark.parametrize(
    "args",
    [
        ("devices", "list", "--user", "u1"),
        ("token", "issue", "--user", "u1"),
        ("users", "show", "--email", "someone@example.com"),
        ("clients", "add", "--id", "google", "--redirect-uri", "https://oauth-redirect.googleusercontent.com/r/p"),
    ],
)
def test_with_no_stack_and_no_project_the_cli_refuses_to_guess_in_one_line(tmp_path: Path, args: tuple[str]) -> None:
    """Without the environment, `devices` and `token` printed a 40-line DefaultCredentialsError, and with real
    credentials on the machine they would have written to whatever project those name."""
    done = run_cli(*args, env=bare_environment(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "GOOGLE_CLOUD_PROJECT" in done.stderr
    assert "make up" in done.stderr


def test_an_emulator_that_is_not_there_is_said_at_once_not_waited_for(tmp_path: Path) -> None:
    """The README's `export FIRESTORE_EMULATOR_HOST=127.0.0.1:8080`, with the emulator elsewhere or gone, made
    `devices list` hang silently."""
    closed = emulators.free_port()
    env = {**bare_environment(tmp_path), "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{closed}", "GOOGLE_CLOUD_PROJECT": "p"}
    started = time.monotonic()
    done = run_cli("devices", "list", "--user", "u1", env=env, timeout_s=30)
    assert done.returncode == 1
    assert time.monotonic() - started < 15
    assert f"no Firestore emulator answers at 127.0.0.1:{closed} (FIRESTORE_EMULATOR_HOST)" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_cli_takes_the_stack_from_its_record_unless_the_environment_names_another_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_STACK_DIR", str(tmp_path))
    stack_env = {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:18080", "GOOGLE_CLOUD_PROJECT": "demo-smart-home"}
    # This test's own process stands in for the stack (its command line names tools.stack: pytest's does not).
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "tools.stack"])
    # Until the child has exec'd, /proc still shows pytest's command line: wait for the stand-in's own.
    cmdline = Path(f"/proc/{fake.pid}/cmdline")
    deadline = time.monotonic() + 10
    while cmdline.exists() and b"tools.stack" not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        local_stack.record_path().write_text(json.dumps({"pid": fake.pid, "env": stack_env}))
        environ: dict[str, str] = {}
        assert "local stack" in local_stack.point_at_stack(environ)
        assert environ == stack_env
        elsewhere = {"GOOGLE_CLOUD_PROJECT": "my-real-project"}
        assert local_stack.point_at_stack(elsewhere) == "project my-real-project"
        assert elsewhere == {"GOOGLE_CLOUD_PROJECT": "my-real-project"}
    finally:
        fake.send_signal(signal.SIGKILL)
        fake.wait()
    with pytest.raises(local_stack.StackProblem, match="GOOGLE_CLOUD_PROJECT"):
        local_stack.point_at_stack({})


@pytest.mark.parametrize(
    ("variables", "flags"),
    [((), ""), (("FRESH=1",), "--fresh"), (("FRESH=0",), ""), (("FRESH=1", "QUIET=1"), "--fresh --quiet")],
)
def test_make_up_passes_fresh_and_quiet_on_to_the_stack(variables: tuple[str, ...], flags: str) -> None:
    planned = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "up", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if planned.returncode != 0:
        pytest.skip(f"make is not usable here: {planned.stderr.strip()[:200]}")
    [command] = [line for line in planned.stdout.splitlines() if "tools.stack" in line]
    assert command.split("tools.stack", 1)[1].split() == flags.split()


# The terminal


class Gone(io.StringIO):
    """A terminal that was closed: every write fails, as after SIGHUP."""

    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")


def call(status: int | None, response: object, method: str = "fulfillment.EXECUTE") -> dict[str, object]:
    request = {"inputs": [{"payload": {"commands": [{"devices": [{"id": "desk-lamp"}]}]}}]}
    return {
        "method": method,
        "agentUserId": "0123456789abcdef",
        "request": request,
        "status": status,
        "response": response,
        "caller": "page",
        "at": 1000.0,
        "finishedAt": 1000.042,
    }


def test_the_terminal_says_a_line_per_call_with_failures_in_red_and_nothing_once_it_is_gone() -> None:
    from tools.stack_console import RED, RESET, Console

    shown = io.StringIO()
    console = Console(shown, color=True)
    console.standin_call(call(200, {"payload": {"commands": [{"ids": ["desk-lamp"], "status": "SUCCESS"}]}}))
    challenged = {"payload": {"commands": [{"status": "ERROR", "challengeNeeded": {"type": "pinNeeded"}}]}}
    console.standin_call(call(200, challenged))
    console.standin_call(call(None, None) | {"error": "connection refused"})
    ok, pin, down = shown.getvalue().splitlines()
    assert "fulfillment" in ok
    assert "EXECUTE" in ok
    assert "01234567…" in ok
    assert "desk-lamp" in ok
    assert "200 SUCCESS" in ok
    assert "42 ms" in ok
    assert ok.endswith("page")
    assert RED not in ok
    assert pin.startswith(RED)
    assert pin.endswith(RESET)
    assert "pinNeeded" in pin
    assert down.startswith(RED)
    assert "no answer: connection refused" in down

    quiet = io.StringIO()
    Console(quiet, quiet=True).standin_call(call(200, {}))
    assert quiet.getvalue() == ""
    gone = Console(Gone())
    gone.say("the banner")
    gone.standin_call(call(200, {}))  # no exception: the stack goes on, and stops cleanly
