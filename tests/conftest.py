"""Test session fixtures: Google's emulators on free ports, started once per session and stopped at its end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import secret_watch
from tools import emulators

# Every hashed secret of the session is recorded from the start (see tests/test_zz_secrets.py).
secret_watch.start()

PROJECT = "demo-smart-home-test"
LOG_DIR = Path(__file__).resolve().parents[1] / ".local-stack" / "test-logs"


@pytest.fixture(scope="session")
def local_eventarc() -> Iterator[Any]:
    """Delivers the Firestore emulator's trigger events to functions (tools/eventarc.py)."""
    from tools.eventarc import LocalEventarc

    eventarc = LocalEventarc().start()
    yield eventarc
    eventarc.stop()


@pytest.fixture(scope="session")
def firestore_emulator(local_eventarc: Any) -> Iterator[emulators.Emulator]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    try:
        emulator = emulators.start_firestore(
            PROJECT, log_path=LOG_DIR / "firestore.log", functions_emulator=local_eventarc.address
        )
    except emulators.EmulatorUnavailable as missing:
        pytest.skip(str(missing))
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.address
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
    yield emulator
    emulator.stop()


@pytest.fixture
def firestore_db(firestore_emulator: emulators.Emulator) -> object:
    """A Firestore client on an emptied emulator database."""
    from functions.platform import firestore as adapter

    db = adapter.client()
    secret_watch.dump_firestore(db)
    emulators.clear_firestore(firestore_emulator.address, PROJECT)
    return db


@pytest.fixture(scope="session")
def homegraph_standin_server() -> Iterator[Any]:
    """The HomeGraph stand-in (tools/homegraph_standin.py) on a free loopback port, for the session."""
    from tools.homegraph_standin import StandIn

    standin = StandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def homegraph_standin(homegraph_standin_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The stand-in, emptied (no users, records or faults), with HOMEGRAPH_ENDPOINT pointing at it."""
    homegraph_standin_server.reset()
    homegraph_standin_server.fulfillment_url = None
    homegraph_standin_server.token_source = None
    homegraph_standin_server.sync_settle_s = 0.0
    homegraph_standin_server.auto_link = False
    monkeypatch.setenv("HOMEGRAPH_ENDPOINT", homegraph_standin_server.url)
    return homegraph_standin_server


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[emulators.Emulator]:
    """Google's Pub/Sub emulator on a free port, for the session; PUBSUB_EMULATOR_HOST points at it."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    try:
        emulator = emulators.start_pubsub(PROJECT, log_path=LOG_DIR / "pubsub.log")
    except emulators.EmulatorUnavailable as missing:
        pytest.skip(str(missing))
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.address
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
    yield emulator
    os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    emulator.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The secrets check reads what the whole session wrote, so it runs last."""
    last = [item for item in items if item.name == "test_no_secret_was_stored_or_logged"]
    items[:] = [item for item in items if item not in last] + last
