"""Timer: counting down between commands (ctx.now_ms), limits, pause/resume, cancel and command-only devices."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import InvalidDevice
from functions.core.traits.timer import COUNTDOWN, remaining_at
from tests.unit.traits.appliance_helpers import NOW_MS, Harness

TIMER = Harness("Timer")
TWO_HOURS = {"maxTimerLimitSec": 7200}
SECOND = 1000


def started(seconds: int = 300, attributes: dict[str, Any] = TWO_HOURS) -> Any:
    device = TIMER.register(attributes)
    return TIMER.run(device, "TimerStart", {"timerTimeSec": seconds}).device


def test_a_new_device_has_no_timer() -> None:
    assert TIMER.register(TWO_HOURS).query_states() == {"timerRemainingSec": -1, "timerPaused": False}


def test_start_reports_the_duration_and_keeps_its_bookkeeping_to_itself() -> None:
    outcome = TIMER.run(TIMER.register(TWO_HOURS), "TimerStart", {"timerTimeSec": 300})
    assert outcome.reported == {"timerRemainingSec": 300, "timerPaused": False}
    assert outcome.device.state[COUNTDOWN] == {"remainingSec": 300, "atMs": NOW_MS}


@pytest.mark.parametrize(("seconds", "code"), [(0, "belowMinimumTimerDuration"), (7201, "aboveMaximumTimerDuration")])
def test_start_outside_the_devices_limits_is_refused(seconds: int, code: str) -> None:
    assert TIMER.refused(TIMER.register(TWO_HOURS), "TimerStart", {"timerTimeSec": seconds}) == code


def test_start_replaces_a_running_or_paused_timer() -> None:
    paused = TIMER.run(started(), "TimerPause").device
    restarted = TIMER.run(paused, "TimerStart", {"timerTimeSec": 60}, now_ms=NOW_MS + 5 * SECOND)
    assert restarted.reported == {"timerRemainingSec": 60, "timerPaused": False}


def test_adjust_counts_from_the_time_left_now() -> None:
    # 100 s after a 300 s timer started, 200 s are left; one more minute makes 260.
    outcome = TIMER.run(started(), "TimerAdjust", {"timerTimeSec": 60}, now_ms=NOW_MS + 100 * SECOND)
    assert outcome.reported == {"timerRemainingSec": 260, "timerPaused": False}
    assert outcome.device.state[COUNTDOWN] == {"remainingSec": 260, "atMs": NOW_MS + 100 * SECOND}


def test_partial_seconds_left_round_up() -> None:
    device = started()
    assert remaining_at(device.state, NOW_MS + 10_400) == 290
    assert remaining_at(device.state, NOW_MS + 299_999) == 1
    assert remaining_at(device.state, NOW_MS + 300_000) == -1


@pytest.mark.parametrize(("delta", "expected"), [(7000, 7200), (-299, 1), (-300, 1), (-7200, 1), (-290, 10), (0, 300)])
def test_adjust_keeps_the_timer_within_one_second_and_the_limit(delta: int, expected: int) -> None:
    outcome = TIMER.run(started(), "TimerAdjust", {"timerTimeSec": delta})
    assert outcome.reported["timerRemainingSec"] == expected


def test_an_adjustment_larger_than_the_limit_is_refused() -> None:
    assert TIMER.refused(started(), "TimerAdjust", {"timerTimeSec": 7201}) == "timerValueOutOfRange"
    assert TIMER.refused(started(), "TimerAdjust", {"timerTimeSec": -7201}) == "timerValueOutOfRange"


@pytest.mark.parametrize("command", ["TimerAdjust", "TimerPause", "TimerResume", "TimerCancel"])
def test_commands_on_no_timer_answer_no_timer_exists(command: str) -> None:
    params = {"timerTimeSec": 60} if command == "TimerAdjust" else {}
    assert TIMER.refused(TIMER.register(TWO_HOURS), command, params) == "noTimerExists"


@pytest.mark.parametrize("command", ["TimerAdjust", "TimerPause", "TimerCancel"])
def test_a_timer_that_has_gone_off_no_longer_exists(command: str) -> None:
    params = {"timerTimeSec": 60} if command == "TimerAdjust" else {}
    assert TIMER.refused(started(), command, params, now_ms=NOW_MS + 301 * SECOND) == "noTimerExists"


def test_pause_freezes_the_time_left_and_resume_counts_down_again() -> None:
    paused = TIMER.run(started(), "TimerPause", now_ms=NOW_MS + 10_500)
    assert paused.reported == {"timerRemainingSec": 290, "timerPaused": True}
    assert COUNTDOWN not in paused.device.state

    # However long it stays paused, 290 s remain.
    adjusted = TIMER.run(paused.device, "TimerAdjust", {"timerTimeSec": 10}, now_ms=NOW_MS + 3_600 * SECOND)
    assert adjusted.reported == {"timerRemainingSec": 300, "timerPaused": True}

    resumed = TIMER.run(adjusted.device, "TimerResume", now_ms=NOW_MS + 4_000 * SECOND)
    assert resumed.reported == {"timerRemainingSec": 300, "timerPaused": False}
    later = TIMER.run(resumed.device, "TimerPause", now_ms=NOW_MS + 4_030 * SECOND)
    assert later.reported == {"timerRemainingSec": 270, "timerPaused": True}


def test_pausing_a_paused_timer_and_resuming_a_running_one_change_nothing() -> None:
    paused = TIMER.run(started(), "TimerPause", now_ms=NOW_MS + 20 * SECOND).device
    again = TIMER.run(paused, "TimerPause", now_ms=NOW_MS + 50 * SECOND)
    assert again.reported == {"timerRemainingSec": 280, "timerPaused": True}

    running = started()
    resumed = TIMER.run(running, "TimerResume", now_ms=NOW_MS + 20 * SECOND)
    assert resumed.effect.state == {}
    assert resumed.device.state == running.state


def test_cancel_removes_the_timer() -> None:
    outcome = TIMER.run(started(), "TimerCancel", now_ms=NOW_MS + 5 * SECOND)
    assert outcome.reported == {"timerRemainingSec": -1, "timerPaused": False}
    assert COUNTDOWN not in outcome.device.state


def test_a_time_left_written_by_the_device_is_taken_as_current() -> None:
    device = started()
    # The device reported 250 s left; the backend's own countdown (300 s at NOW_MS) no longer applies.
    written = device.with_state({"timerRemainingSec": 250})
    outcome = TIMER.run(written, "TimerAdjust", {"timerTimeSec": 10}, now_ms=NOW_MS + 200 * SECOND)
    assert outcome.reported["timerRemainingSec"] == 260


def test_a_running_timer_written_by_the_device_alone_is_used_as_is() -> None:
    device = TIMER.register(TWO_HOURS, {"timerRemainingSec": 120, "timerPaused": False})
    outcome = TIMER.run(device, "TimerAdjust", {"timerTimeSec": -20})
    assert outcome.reported == {"timerRemainingSec": 100, "timerPaused": False}


def test_command_only_timers_report_nothing_and_cannot_be_checked_for_existence() -> None:
    attributes = {"maxTimerLimitSec": 600, "commandOnlyTimer": True}
    device = TIMER.register(attributes)
    assert device.query_states() == {}
    for command, params in [
        ("TimerStart", {"timerTimeSec": 60}),
        ("TimerAdjust", {"timerTimeSec": 30}),
        ("TimerPause", {}),
        ("TimerResume", {}),
        ("TimerCancel", {}),
    ]:
        assert TIMER.run(device, command, params).reported == {}
    assert TIMER.refused(device, "TimerStart", {"timerTimeSec": 601}) == "aboveMaximumTimerDuration"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"timerRemainingSec": 7201}, "exceeds maxTimerLimitSec"),
        ({"timerRemainingSec": -1, "timerPaused": True}, "no timer exists to be paused"),
        ({"timerRemainingSec": -2}, r"\(Timer\)\.timerRemainingSec"),
    ],
)
def test_impossible_states_are_refused(state: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidDevice, match=message):
        TIMER.register(TWO_HOURS, state)
