"""Ports for the local stack's pieces, agreed between stacks that start at the same moment.

A port is free when nothing listens on it (`emulators.port_is_free`). Two stacks starting together can both find a
default port free before either one's emulator listens on it; the second then talks to the first one's emulator
(the Firestore emulator refuses its project; the Pub/Sub emulator, which keeps running when it cannot listen,
even looks healthy). So each port a stack takes is also reserved: an advisory lock (flock) on a file named after
the port, in a folder every stack of this machine shares, held until the stack stops or its process ends (the
kernel drops the lock of a process killed outright too). Where there is no flock (Windows), or the folder cannot
be written, ports are taken as found, as before.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from tools import emulators

LOCK_DIR = Path(tempfile.gettempdir()) / "smart-home-stack-ports"
ATTEMPTS = 20  # free ports tried before giving up: each is one another stack has just reserved


class PortReservations:
    def __init__(self, lock_dir: Path = LOCK_DIR) -> None:
        self._dir = lock_dir
        self._held: dict[int, IO[bytes]] = {}
        self._unlocked: set[int] = set()  # handed out where no lock could be taken (still one per piece)

    def take(self, port: int) -> bool:
        """Reserves `port` for this process; False if another stack holds it, or this one already does (each
        piece gets a port of its own)."""
        if port in self._held or port in self._unlocked:
            return False
        try:
            import fcntl
        except ImportError:  # no flock here: nothing to agree with
            return self._as_found(port)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            handle = open(self._dir / f"{port}.lock", "ab")  # noqa: SIM115 - held open: the lock lives with it
        except OSError:  # a folder another user made, a read-only /tmp: take the port as found
            return self._as_found(port)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another stack holds it
            handle.close()
            return False
        except OSError:  # no locks on this filesystem: take the port as found
            handle.close()
            return self._as_found(port)
        self._held[port] = handle
        return True

    def _as_found(self, port: int) -> bool:
        self._unlocked.add(port)
        return True

    def pick(self, preferred: int | None, host: str) -> int:
        """`preferred` if nothing listens on it and no other stack holds it, else a free port, reserved."""
        if preferred and emulators.port_is_free(preferred, host) and self.take(preferred):
            return preferred
        for _ in range(ATTEMPTS):
            port = emulators.free_port(host)
            if self.take(port):
                return port
        raise RuntimeError(f"no free port could be reserved in {ATTEMPTS} tries (lock folder {self._dir})")

    def held(self) -> list[int]:
        return sorted({*self._held, *self._unlocked})

    def release(self) -> None:
        """Drops every reservation (closing a file drops its lock): the stack has stopped."""
        for handle in self._held.values():
            handle.close()
        self._held.clear()
        self._unlocked.clear()
