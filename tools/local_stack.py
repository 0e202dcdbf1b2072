"""Where the local stack (`make up`, tools/stack.py) runs, for every tool that talks to it.

The stack writes `.local-stack/stack.json` (LOCAL_STACK_DIR moves the folder): its pid, the URLs of its pieces, the
environment that points a client at its emulators, and its children's pids. This module reads that record:

  * `running()`: the record of a stack that runs; a record whose process is gone (or is no longer the stack) is
    stale, and `stale()` returns it, so the next start can end what it left behind (`end_leftovers`);
  * `point_at_stack()`: the operators' CLI (`devices`, `token`, `users`, `clients`, `google`, ...) talks to the
    running stack when the environment names no emulator and no other project, and refuses to guess a real
    project when neither a stack runs nor GOOGLE_CLOUD_PROJECT is set (google-auth would take whatever project the
    machine's credentials name);
  * `user_is_known()`: whether an agentUserId has devices or an account, so that a typo is not a new user.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# What a client needs to reach the stack's emulators and stand-in, as the functions read it.
SHARED_ENV = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "HOMEGRAPH_ENDPOINT")
STACK_MODULE = "tools.stack"  # in the stack's command line: tells the stack from a process that took its pid


class StackProblem(Exception):
    """The tools cannot tell where to act: said in one line, with what to do."""


def state_dir() -> Path:
    """Logs, the record and the data of the local stack; LOCAL_STACK_DIR lets a test run a stack of its own."""
    return Path(os.environ.get("LOCAL_STACK_DIR") or ROOT / ".local-stack")


def record_path() -> Path:
    return state_dir() / "stack.json"


def data_dir() -> Path:
    """What lasts from one start to the next (the Firestore export, the demo's secrets); --fresh empties it."""
    return state_dir() / "data"


def read_record() -> dict[str, Any] | None:
    try:
        record = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def command_line(pid: int) -> str | None:
    """The process's command line, or None if no such process runs (a zombie has none either)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip() or None
    try:  # no /proc (macOS): ps
        shown = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return shown.stdout.strip() or None


def _is_stack(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    line = command_line(pid)
    return line is not None and STACK_MODULE in line


def running() -> dict[str, Any] | None:
    """The record of the stack that runs now, or None."""
    record = read_record()
    return record if record is not None and _is_stack(record.get("pid")) else None


def stale() -> dict[str, Any] | None:
    """A record left by a stack that is gone (killed, or its terminal closed before it could clean up)."""
    record = read_record()
    return record if record is not None and not _is_stack(record.get("pid")) else None


def end_leftovers(record: dict[str, Any]) -> list[int]:
    """Ends the recorded children of a gone stack that still run (their command lines must match the record, so
    a process that took a recorded pid since is left alone); returns the pids it ended."""
    ended: list[int] = []
    for child in record.get("children") or []:
        pid, command = child.get("pid"), child.get("command")
        if not isinstance(pid, int) or not command or command_line(pid) != command:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # each child leads its own process group (start_new_session)
            ended.append(pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(command_line(pid) for pid in ended):
        time.sleep(0.1)
    for pid in ended:
        if command_line(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    return ended


def _answers(address: str, timeout_s: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def point_at_stack(environ: MutableMapping[str, str] | None = None) -> str:
    """Fills in the environment of this process from the running stack where it says nothing itself; returns what
    the commands will act on. StackProblem when that cannot be known safely, or the named emulator is not there."""
    env = os.environ if environ is None else environ
    record = running()
    stack_env: dict[str, str] = dict((record or {}).get("env") or {})
    emulator = env.get("FIRESTORE_EMULATOR_HOST")
    project = env.get("GOOGLE_CLOUD_PROJECT")
    if emulator:
        if not _answers(emulator):
            hint = "is the stack running? (`make up`)"
            if stack_env.get("FIRESTORE_EMULATOR_HOST") not in (None, emulator):
                hint = f"the local stack's emulator is at {stack_env['FIRESTORE_EMULATOR_HOST']}: unset it to use that"
            raise StackProblem(f"no Firestore emulator answers at {emulator} (FIRESTORE_EMULATOR_HOST); {hint}")
        return f"the Firestore emulator at {emulator}"
    if record is not None and project in (None, "", stack_env.get("GOOGLE_CLOUD_PROJECT")):
        for name in SHARED_ENV:
            if name in stack_env and not env.get(name):
                env[name] = stack_env[name]
        return f"the local stack (project {stack_env.get('GOOGLE_CLOUD_PROJECT')})"
    if not project:
        raise StackProblem(
            "no local stack runs (start one with `make up`) and GOOGLE_CLOUD_PROJECT is not set: "
            "set GOOGLE_CLOUD_PROJECT to the project to act on (with FIRESTORE_EMULATOR_HOST for an emulator)"
        )
    return f"project {project}"


def demo_user() -> str | None:
    """The running stack's demo user (the `google` commands' user when none is named), or None."""
    user = ((running() or {}).get("demo") or {}).get("user")
    return str(user) if user else None


def user_is_known(agent_user_id: str) -> bool:
    """Whether the user has a device, or an account: a sign-in account of account linking, or (with an identity
    provider of one's own) the link record Google's linking left (users/{agentUserId}), in the Firestore the
    environment names."""
    from functions.core.ids import id_problem
    from functions.platform import firestore as base

    if id_problem(agent_user_id):
        return False
    db = base.client()
    user = db.collection("users").document(agent_user_id)
    if any(True for _ in user.collection("devices").limit(1).stream()) or user.get().exists:
        return True
    try:
        from functions.linking.store import FirestoreUserDirectory
    except ImportError:  # a tree without account linking
        return False
    return FirestoreUserDirectory(db).get(agent_user_id) is not None


def unknown_user_message(agent_user_id: str) -> str:
    return f"no user {agent_user_id!r}: it has neither devices nor an account (a typo?); --create if it is a new user"


def print_note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def iso_time(epoch_s: float | None) -> str | None:
    """RFC 3339 in UTC with milliseconds: how the tools show every time (the stand-in records epoch seconds)."""
    if not isinstance(epoch_s, int | float):
        return None
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
