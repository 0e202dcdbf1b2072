"""OpenClose: doors, gates, blinds and valves that open fully, partly, or in more than one direction.

A device opening in one direction reports `openPercent`; a device listing several `openDirection`s reports
`openState`, one entry per direction. A command without a direction applies to every direction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, STRING, array, enum, exclusive, integer, number, obj
from functions.core.schema import errors as schema_errors
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, clamp, command, require_range

DIRECTIONS = ("UP", "DOWN", "LEFT", "RIGHT", "IN", "OUT")
DIRECTION = enum(*DIRECTIONS)
PERCENT = number(0, 100)

# Codes of this trait (besides the platform-wide ones).
LOCKED_STATE = "lockedState"
DEVICE_JAMMING_DETECTED = "deviceJammingDetected"
DISCRETE_ONLY = "discreteOnlyOpenClose"

_ONE_FORM: dict[str, Any] = {
    "not": {
        "required": ["openPercent", "openState"],
        "description": "openPercent and openState are two forms of the same state: report one",
    }
}
_DIRECTION_STATE = obj({"openPercent": PERCENT, "openDirection": DIRECTION}, required=("openPercent", "openDirection"))
_OPEN_STATE = array(_DIRECTION_STATE)


def _follow_up(body: dict[str, Any]) -> dict[str, Any]:
    return {"priority": integer(), "followUpResponse": body}


@register
class OpenClose(Trait):
    name = "OpenClose"
    attributes_schema = obj(
        {
            "discreteOnlyOpenClose": BOOLEAN,
            "openDirection": array(DIRECTION),
            "commandOnlyOpenClose": BOOLEAN,
            "queryOnlyOpenClose": BOOLEAN,
        },
        **exclusive("commandOnlyOpenClose", "queryOnlyOpenClose"),
    )
    # One of the two forms, never both; which one a device uses follows from its attributes (see state_errors).
    # Neither is required: a device is validated before its initial state is filled in.
    states_schema = obj(
        {"openPercent": PERCENT, "openState": _OPEN_STATE},
        **_ONE_FORM,
    )
    command_only_attribute = "commandOnlyOpenClose"
    query_only_attribute = "queryOnlyOpenClose"
    follow_up_schema = obj(
        {
            "OpenClose": obj(
                _follow_up(
                    {
                        "oneOf": [
                            obj(
                                {"status": enum("SUCCESS"), "followUpToken": STRING, "openPercent": PERCENT},
                                required=("status", "followUpToken", "openPercent"),
                            ),
                            obj(
                                {"status": enum("FAILURE"), "followUpToken": STRING, "errorCode": STRING},
                                required=("status", "followUpToken", "errorCode"),
                            ),
                        ]
                    }
                ),
                required=("priority", "followUpResponse"),
            )
        },
        required=("OpenClose",),
    )

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        directions = _directions(attributes)
        if directions:
            return {"openState": [{"openPercent": 0, "openDirection": d} for d in directions]}
        return {"openPercent": 0}

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        found = super().state_errors(attributes, state)
        if not cls.state_keys(attributes):
            return found
        if _directions(attributes) and "openPercent" in state:
            found.append("state (OpenClose).openPercent: a device with openDirection reports openState instead")
        if not _directions(attributes) and "openState" in state:
            found.append("state (OpenClose).openState: only for devices that list openDirection; use openPercent")
        return found

    @classmethod
    def normalize_state(
        cls, attributes: Mapping[str, Any], merged: dict[str, Any], changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The two forms are alternatives (Google's oneOf): the form just reported replaces the stored other one.

        A device that lists `openDirection` keeps `openState`, one that lists none keeps `openPercent`
        (see state_errors). A report in the other form is converted where nothing is lost: a bare percent on
        a device with exactly one direction, an openState of one entry on a device with no direction. Anything
        else in the other form (a bare percent for several directions) cannot be converted without a guess:
        it stays as reported, the stored form is dropped, and validation names the form the device must use.
        A report carrying both forms, or neither, is left as it is.
        """
        forms = ("openPercent", "openState")
        reported = [key for key in forms if key in changes and key in merged]
        if len(reported) != 1:
            return merged
        [newest] = reported
        directions = _directions(attributes)
        form, value = newest, merged[newest]
        if newest == "openPercent" and len(directions) == 1 and not schema_errors(PERCENT, value):
            form, value = "openState", [{"openPercent": value, "openDirection": directions[0]}]
        elif newest == "openState" and not directions and _one_direction_state(value):
            form, value = "openPercent", value[0]["openPercent"]
        if form == newest and all(key in reported or key not in merged for key in forms):
            return merged  # the usual case: the device's own form, nothing stale beside it
        # The newest form (converted or not) takes the reported key's place; the stale alternative goes.
        return {
            (form if key == newest else key): (value if key == newest else item)
            for key, item in merged.items()
            if key == newest or key not in forms
        }

    @command(
        "OpenClose",
        # openPercent is not bounded here so that 0..100 is checked by the handler and answered valueOutOfRange.
        params=obj(
            {"openPercent": number(), "openDirection": DIRECTION, "followUpToken": STRING},
            required=("openPercent",),
        ),
        long_running=True,
    )
    def open_close(self, ctx: CommandContext) -> Effect:
        target = ctx.params["openPercent"]
        require_range(target, 0, 100, "openPercent")
        return _move(ctx, lambda _current: target)

    @command(
        "OpenCloseRelative",
        params=obj(
            {"openRelativePercent": number(-100, 100), "openDirection": DIRECTION},
            required=("openRelativePercent",),
        ),
        long_running=True,
    )
    def open_close_relative(self, ctx: CommandContext) -> Effect:
        delta = ctx.params["openRelativePercent"]
        return _move(ctx, lambda current: clamp(current + delta, 0, 100))

    @classmethod
    def follow_up_payload(cls, token: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        """The follow-up Google gets once a pending OpenClose completed; `state` is the device's state then."""
        percent = _number(_current(state, params.get("openDirection")))
        body = {"status": "SUCCESS", "openPercent": percent, "followUpToken": token}
        return cls.follow_up_response(body)


def _directions(attributes: Mapping[str, Any]) -> list[str]:
    return list(attributes.get("openDirection") or [])


def _one_direction_state(value: Any) -> bool:
    """Whether `value` is a valid openState of exactly one entry."""
    return isinstance(value, list) and len(value) == 1 and not schema_errors(_OPEN_STATE, value)


def _current(state: Mapping[str, Any], direction: str | None) -> float:
    """The open percent of one direction (or of the first one / the whole device when none is named)."""
    entries = state.get("openState")
    if entries:
        for entry in entries:
            if direction is None or entry.get("openDirection") == direction:
                return float(entry["openPercent"])
    return float(state.get("openPercent", 0))


def _move(ctx: CommandContext, target_of: Callable[[float], float]) -> Effect:
    """Applies `target_of(current percent)` to the named direction, or to every direction when none is named."""
    directions = _directions(ctx.attributes)
    direction = ctx.params.get("openDirection")
    if direction is not None and direction not in directions:
        raise CommandError(errors.NOT_SUPPORTED, f"this device does not open {direction}")
    command_only = ctx.attributes.get("commandOnlyOpenClose") is True
    if command_only and "openRelativePercent" in ctx.params:
        # Google sends relative commands to one-way devices; only the device knows where it is, so there is no
        # state to compute or store here.
        return Effect(pending=ctx.follow_up_token is not None)

    keys: list[str | None] = list(directions) if directions else [None]
    before = {d: _current(ctx.state, d) for d in keys}
    after: dict[str | None, float] = {
        d: (target_of(p) if direction is None or d == direction else p) for d, p in before.items()
    }
    for value in after.values():
        if ctx.attributes.get("discreteOnlyOpenClose") is True and value not in (0, 100):
            raise CommandError(DISCRETE_ONLY, f"this device only opens fully or closes fully, not to {value}%")
    # A lock on the same device (LockUnlock) keeps it from opening.
    if ctx.state.get("isJammed") is True:
        raise CommandError(DEVICE_JAMMING_DETECTED, "the device reports being jammed")
    if ctx.state.get("isLocked") is True and any(after[d] > before[d] for d in before):
        raise CommandError(LOCKED_STATE, "the device is locked")

    if directions:
        state: dict[str, Any] = {
            "openState": [{"openPercent": _number(after[d]), "openDirection": d} for d in directions]
        }
    else:
        state = {"openPercent": _number(after[None])}
    return Effect(state=state, pending=ctx.follow_up_token is not None)


def _number(value: float) -> int | float:
    """Whole percentages are stored as integers, as devices usually report them."""
    return int(value) if float(value).is_integer() else value
