"""The CloudEvent `time` as the entry point reads it (Eventarc's precise times, the emulator's whole seconds)."""

from __future__ import annotations

import pytest

from functions.request_sync.entry import event_time_us

BASE = 1_795_240_723_000_000  # 2026-11-21T05:58:43Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T05:58:43Z", (BASE, True)),
        ("2026-11-21T05:58:43.5Z", (BASE + 500_000, False)),
        ("2026-11-21T05:58:43.123456Z", (BASE + 123_456, False)),
        ("2026-11-21T05:58:43.123456789Z", (BASE + 123_456, False)),
        ("2026-11-21T06:58:43.000001+01:00", (BASE + 1, False)),
    ],
)
def test_event_times(text: str, expected: tuple[int, bool]) -> None:
    assert event_time_us(text) == expected


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-11-21 05:58:43Z", "2026-11-21T05:58:43"])
def test_unreadable_times(text: str | None) -> None:
    assert event_time_us(text) is None
