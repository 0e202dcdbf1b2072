"""Runs a command that ends when the process that started it ends: `python orphan_guard.py PARENT_PID COMMAND...`.

Linux only (tools/emulators.py `guarded` uses it there): asks the kernel for SIGTERM when the parent ends
(prctl PR_SET_PDEATHSIG, which an exec keeps), makes sure the parent has not ended already, then becomes the
command (exec: same pid, same process group). Standard library only, run with -I -S: it starts in milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: orphan_guard.py PARENT_PID COMMAND [ARG ...]", file=sys.stderr)
        return 2
    parent, command = int(argv[0]), argv[1:]
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        print(f"orphan_guard: prctl failed (errno {ctypes.get_errno()})", file=sys.stderr)
    if os.getppid() != parent:  # the parent ended before the signal was asked for: nothing would ever come
        return 1
    os.execvp(command[0], command)  # noqa: S606 - the command as given, no shell
    return 127  # not reached: exec replaces this process or raises


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
