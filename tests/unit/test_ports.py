"""Stacks starting at the same moment agree on ports (tools/ports.py): a port another stack has reserved is not
taken even while nothing listens on it yet, and a reservation ends with its stack, however that ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import emulators
from tools.ports import PortReservations

pytest.importorskip("fcntl", reason="ports are agreed with flock, which this system lacks")

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]


def test_a_port_another_stack_reserved_is_left_to_it_though_nothing_listens_yet(tmp_path: Path) -> None:
    preferred = emulators.free_port(HOST)
    first, second = PortReservations(tmp_path), PortReservations(tmp_path)
    assert first.pick(preferred, HOST) == preferred
    assert emulators.port_is_free(preferred, HOST), "nothing listens: only the reservation keeps it"
    other = second.pick(preferred, HOST)
    assert other != preferred
    assert second.held() == [other]
    first.release()
    assert second.pick(preferred, HOST) == preferred, "free again once the first stack stopped"
    second.release()


def test_one_stack_never_hands_one_port_to_two_of_its_pieces(tmp_path: Path) -> None:
    """The pieces start before any listens: a port this stack reserved a moment ago is not free for the next."""
    preferred = emulators.free_port(HOST)
    mine = PortReservations(tmp_path)
    picked = [mine.pick(preferred, HOST) for _ in range(5)]
    assert picked[0] == preferred
    assert len(set(picked)) == 5, picked
    mine.release()


def test_a_reservation_ends_with_a_stack_killed_outright(tmp_path: Path) -> None:
    preferred = emulators.free_port(HOST)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tools.ports import PortReservations; "
            f"r = PortReservations(Path(sys.argv[1])); assert r.take({preferred}); print('held', flush=True); "
            "time.sleep(120)",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        mine = PortReservations(tmp_path)
        assert mine.pick(preferred, HOST) != preferred
        mine.release()
    finally:
        holder.kill()
        holder.wait(30)
        if holder.stdout is not None:
            holder.stdout.close()
    after = PortReservations(tmp_path)
    assert after.pick(preferred, HOST) == preferred
    after.release()


def test_a_port_with_a_listener_is_never_picked_even_unreserved(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen()
        taken = listener.getsockname()[1]
        reservations = PortReservations(tmp_path)
        assert reservations.pick(taken, HOST) != taken
        reservations.release()


def test_an_unwritable_lock_folder_takes_ports_as_found(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    preferred = emulators.free_port(HOST)
    reservations = PortReservations(blocked / "ports")
    assert reservations.pick(preferred, HOST) == preferred
    assert reservations.pick(preferred, HOST) != preferred, "still one port per piece"
    reservations.release()
