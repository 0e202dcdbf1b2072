"""LockUnlock: locks, and anything else that can be locked or reports being locked.

A jammed lock cannot tell whether it is locked, so it reports `isJammed` without `isLocked`. Locks usually
complete asynchronously: with a follow-up token the command answers PENDING and a follow-up reports the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, STRING, enum, integer, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, command

DEVICE_JAMMING_DETECTED = "deviceJammingDetected"
ALREADY_LOCKED = "alreadyLocked"
ALREADY_UNLOCKED = "alreadyUnlocked"
# Platform codes for a lock that did not reach the requested state.
LOCK_FAILURE = "lockFailure"
UNLOCK_FAILURE = "unlockFailure"

_JAMMED_HAS_NO_LOCKED_STATE: dict[str, Any] = {
    "not": {
        "properties": {"isJammed": {"const": True}},
        "required": ["isJammed", "isLocked"],
        "description": "a jammed lock does not know whether it is locked: isLocked must be absent",
    }
}


@register
class LockUnlock(Trait):
    name = "LockUnlock"
    states_schema = obj(
        {"isLocked": BOOLEAN, "isJammed": BOOLEAN},
        **_JAMMED_HAS_NO_LOCKED_STATE,
    )
    follow_up_schema = obj(
        {
            "LockUnlock": obj(
                {
                    "priority": integer(),
                    "followUpResponse": {
                        "oneOf": [
                            obj(
                                {"status": enum("SUCCESS"), "followUpToken": STRING, "isLocked": BOOLEAN},
                                required=("status", "followUpToken", "isLocked"),
                            ),
                            obj(
                                {"status": enum("FAILURE"), "followUpToken": STRING, "errorCode": STRING},
                                required=("status", "followUpToken", "errorCode"),
                            ),
                        ]
                    },
                },
                required=("priority", "followUpResponse"),
            )
        },
        required=("LockUnlock",),
    )

    # No initial state: whether a lock is locked is not something to guess.

    @classmethod
    def normalize_state(
        cls, attributes: Mapping[str, Any], merged: dict[str, Any], changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Google's rule "a jammed lock reports no isLocked", applied to a merge rather than refused.

        A jam reported now makes the stored `isLocked` unknown: it is dropped (also when the same report still
        carries one). A lock that reports `isLocked` without mentioning the jam again knows whether it is
        locked, so it is no longer jammed: the newest report wins over the stored jam.
        """
        if merged.get("isJammed") is not True or "isLocked" not in merged:
            return merged
        if "isLocked" in changes and "isJammed" not in changes:
            return {**merged, "isJammed": False}
        return {key: value for key, value in merged.items() if key != "isLocked"}

    @command(
        "LockUnlock", params=obj({"lock": BOOLEAN, "followUpToken": STRING}, required=("lock",)), long_running=True
    )
    def lock_unlock(self, ctx: CommandContext) -> Effect:
        lock = ctx.params["lock"]
        if ctx.state.get("isJammed") is True:
            raise CommandError(DEVICE_JAMMING_DETECTED, "the lock reports being jammed")
        if ctx.state.get("isLocked") is lock:
            raise CommandError(ALREADY_LOCKED if lock else ALREADY_UNLOCKED, "the lock is already in that state")
        return Effect(state={"isLocked": lock, "isJammed": False}, pending=ctx.follow_up_token is not None)

    @classmethod
    def follow_up_payload(cls, token: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        """The follow-up once a pending command completed; `state` is the lock's state then."""
        wanted = params["lock"]
        if state.get("isJammed") is True:
            return cls.follow_up_failure(token, DEVICE_JAMMING_DETECTED)
        if state.get("isLocked") is not wanted:
            return cls.follow_up_failure(token, LOCK_FAILURE if wanted else UNLOCK_FAILURE)
        body = {"status": "SUCCESS", "isLocked": wanted, "followUpToken": token}
        return cls.follow_up_response(body)
