"""RunCycle: how long a running device (washer, dishwasher, ...) still has to go, and in which cycle it is.

The trait has no commands; the device reports its current cycle's names per language and the remaining
times. When it finishes, or fails to, it may notify the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.schema import NON_EMPTY_STRING, array, enum, integer, obj
from functions.core.traits import register
from functions.core.traits.base import Trait

SUCCESS = "SUCCESS"
FAILURE = "FAILURE"

_CYCLE_NAMES = obj(
    {
        "currentCycle": NON_EMPTY_STRING,  # name of the cycle in progress, e.g. "rinse"
        "nextCycle": NON_EMPTY_STRING,  # optional: the cycle that follows, e.g. "spin"
        "lang": NON_EMPTY_STRING,  # language of both names
    },
    required=("currentCycle", "lang"),
)

_OUTCOME = obj(
    {
        "priority": integer(0),  # 0: spoken aloud, the only level Google supports today
        "status": enum(SUCCESS, FAILURE),
        "currentCycleRemainingTime": integer(0),  # seconds; a success carries it
        "errorCode": NON_EMPTY_STRING,  # one of Google's error codes (e.g. deviceStuck); a failure carries it
    },
    required=("priority", "status"),
    allOf=[
        {
            "if": {"properties": {"status": {"const": SUCCESS}}},
            "then": {
                "required": ["currentCycleRemainingTime"],
                "not": {"required": ["errorCode"], "description": "a successful run carries no errorCode"},
            },
        },
        {
            "if": {"properties": {"status": {"const": FAILURE}}},
            "then": {
                "required": ["errorCode"],
                "not": {
                    "required": ["currentCycleRemainingTime"],
                    "description": "a failed run carries errorCode, not currentCycleRemainingTime",
                },
            },
        },
    ],
)


@register
class RunCycle(Trait):
    name = "RunCycle"
    states_schema = obj(
        {
            # One entry per language the device names its cycles in; empty while idle.
            "currentRunCycle": array(_CYCLE_NAMES),
            "currentTotalRemainingTime": integer(0),  # seconds until the whole operation ends
            "currentCycleRemainingTime": integer(0),  # seconds until the current cycle ends
        }
    )
    # The per-device share of a Report State `notifications` object, keyed by the trait name as Google has it.
    notification_schema = obj({"RunCycle": _OUTCOME}, required=("RunCycle",))

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        problems = super().state_errors(attributes, state)
        total, cycle = state.get("currentTotalRemainingTime"), state.get("currentCycleRemainingTime")
        if not problems and isinstance(total, int) and isinstance(cycle, int) and cycle > total:
            # The current cycle is part of the whole operation.
            problems.append(
                f"state (RunCycle).currentCycleRemainingTime: {cycle} exceeds currentTotalRemainingTime {total}"
            )
        return problems

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Idle: no cycle, nothing remaining."""
        return {"currentRunCycle": [], "currentTotalRemainingTime": 0, "currentCycleRemainingTime": 0}

    @staticmethod
    def finished_notification(priority: int = 0) -> dict[str, Any]:
        """The device has finished running."""
        return {"RunCycle": {"priority": priority, "status": SUCCESS, "currentCycleRemainingTime": 0}}

    @staticmethod
    def failed_notification(error_code: str, priority: int = 0) -> dict[str, Any]:
        """The current cycle could not be completed, for the reason `error_code` (e.g. deviceStuck)."""
        return {"RunCycle": {"priority": priority, "status": FAILURE, "errorCode": error_code}}

    @classmethod
    def completion_notification(cls, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any] | None:
        """The success notification when a state change ends a running operation, else None."""
        was = before.get("currentTotalRemainingTime")
        now = after.get("currentTotalRemainingTime")
        if isinstance(was, int) and was > 0 and now == 0:
            return cls.finished_notification()
        return None
