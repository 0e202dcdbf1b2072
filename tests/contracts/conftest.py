"""Contract suites: every case runs once on an in-memory fake (tests/fakes) and once on the Firestore adapter it
stands in for (on the emulator), so that a fake cannot drift from what production does unnoticed."""

from __future__ import annotations

from typing import Any

import pytest

MEMORY = "memory"
FIRESTORE = "firestore"


@pytest.fixture(params=[MEMORY, pytest.param(FIRESTORE, marks=pytest.mark.emulator)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which implementation the case runs on; the Firestore runs carry the `emulator` marker."""
    return str(request.param)


@pytest.fixture
def db(backend: str, request: pytest.FixtureRequest) -> Any:
    """An emptied emulator database for the Firestore runs; None for the in-memory ones (no emulator started)."""
    return request.getfixturevalue("firestore_db") if backend == FIRESTORE else None
