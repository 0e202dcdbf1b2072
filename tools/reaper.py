"""Ends the local stack's children when the stack ends, however it ends (`python -m tools.reaper`, started by it).

The stack starts this process in a session of its own and keeps the write end of a pipe to its stdin; it writes
`+PGID` for each child it starts (every child leads its own process group) and `-PGID` for one it stopped itself.
When the stack is gone, killed outright included, the pipe closes and this process sees the end of its input: it
sends SIGTERM to every group still listed, SIGKILL after GRACE_S to what is left, and exits. A group, not a pid:
a function is a gunicorn master and its worker, and a worker busy retrying calls to an emulator that just ended
would otherwise keep its port for a minute. On Linux the children also get a parent-death signal
(tools/emulators.py); this covers their own children, and the systems without one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import IO

GRACE_S = 5.0


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_groups(groups: set[int], grace_s: float = GRACE_S) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(group_alive(pgid) for pgid in groups):
        time.sleep(0.1)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the stack is not for this process
    groups: set[int] = set()
    for line in sys.stdin:
        text = line.strip()
        with contextlib.suppress(ValueError):
            if text.startswith("+"):
                groups.add(int(text[1:]))
            elif text.startswith("-"):
                groups.discard(int(text[1:]))
    end_groups(groups)
    return 0


class Reaper:
    """The stack's side: start it once, tell it of every child."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tools.reaper"],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # no terminal: closing it does not end this process before the stack
            text=True,
        )
        self._watched: set[int] = set()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _say(self, line: str) -> None:
        pipe: IO[str] | None = self._process.stdin
        if pipe is None:
            return
        with contextlib.suppress(OSError, ValueError):  # the reaper is gone: the parent-death signal remains
            pipe.write(line + "\n")
            pipe.flush()

    def watch(self, pgid: int) -> None:
        if pgid not in self._watched:
            self._watched.add(pgid)
            self._say(f"+{pgid}")

    def forget(self, pgid: int) -> None:
        if pgid in self._watched:
            self._watched.discard(pgid)
            self._say(f"-{pgid}")

    def close(self) -> None:
        """The stack stopped everything itself: the reaper has nothing left to do."""
        for pgid in list(self._watched):
            self.forget(pgid)
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=GRACE_S + 5)


if __name__ == "__main__":
    raise SystemExit(main())
