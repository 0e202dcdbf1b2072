"""A short run of the load benchmark in the test command: 20 concurrent clients, error rate 0 (no timing asserted)."""

from __future__ import annotations

import pytest

from bench import load
from tests.conftest import PROJECT
from tools.emulators import Emulator

pytestmark = pytest.mark.emulator


def test_twenty_concurrent_clients_get_no_error(firestore_emulator: Emulator, firestore_db: object) -> None:
    result = load.run(clients=20, duration_s=4, emulator_address=firestore_emulator.address, project=PROJECT)
    assert result["fulfillment"]["requests"] > 20
    assert result["fulfillment"]["errors"] == 0, result["fulfillment"]["first_errors"]
