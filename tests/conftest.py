"""Test session fixtures: Google's emulators on free ports, started once per session and stopped at its end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.devtools import emulators

PROJECT = "demo-smart-home-test"
LOG_DIR = Path(__file__).resolve().parents[1] / ".local-stack" / "test-logs"


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[emulators.Emulator]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    try:
        emulator = emulators.start_firestore(PROJECT, log_path=LOG_DIR / "firestore.log")
    except emulators.EmulatorUnavailable as missing:
        pytest.skip(str(missing))
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.address
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
    yield emulator
    emulator.stop()


@pytest.fixture
def firestore_db(firestore_emulator: emulators.Emulator) -> object:
    """A Firestore client on an emptied emulator database."""
    from functions.adapters import firestore as adapter

    emulators.clear_firestore(firestore_emulator.address, PROJECT)
    return adapter.client()
