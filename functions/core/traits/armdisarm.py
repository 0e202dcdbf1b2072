"""ArmDisarm: security systems, armed at one level or at one of several named levels.

While arming, a system may report `exitAllowance`, the seconds left to leave before the level takes effect;
that is the window in which arming can be cancelled. Arming without a level re-arms at the current level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, STRING, array, integer, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Trait, command

ALREADY_ARMED = "alreadyArmed"
ALREADY_DISARMED = "alreadyDisarmed"
CANCEL_TOO_LATE = "cancelTooLate"

_CANCEL_NAMES_NO_LEVEL: dict[str, Any] = {
    "not": {
        "required": ["cancel", "armLevel"],
        "description": "a cancel names no level: cancel and armLevel cannot come together",
    }
}
_LEVEL = obj(
    {
        "level_name": STRING,
        "level_values": array(
            obj({"level_synonym": array(STRING), "lang": STRING}, required=("level_synonym", "lang"))
        ),
    },
    required=("level_name", "level_values"),
)
_LEVEL_NAMES = _localized.NamedEntries(name_key="level_name", values_key="level_values", words_key="level_synonym")


@register
class ArmDisarm(Trait):
    name = "ArmDisarm"
    attributes_schema = obj(
        {"availableArmLevels": obj({"levels": array(_LEVEL), "ordered": BOOLEAN}, required=("levels", "ordered"))}
    )
    # currentArmLevel is meaningful (and then expected) only for devices with availableArmLevels.
    states_schema = obj({"isArmed": BOOLEAN, "currentArmLevel": STRING, "exitAllowance": integer()})

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"isArmed": False}
        names = _level_names(attributes)
        if names:
            state["currentArmLevel"] = names[0]
        return state

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        found = super().state_errors(attributes, state)
        level = state.get("currentArmLevel")
        if isinstance(level, str) and level not in _level_names(attributes):
            found.append(f"state (ArmDisarm).currentArmLevel: {level!r} is not a level_name of availableArmLevels")
        return found

    @command(
        "ArmDisarm",
        params=obj(
            {"arm": BOOLEAN, "armLevel": STRING, "cancel": BOOLEAN, "followUpToken": STRING},
            required=("arm",),
            **_CANCEL_NAMES_NO_LEVEL,
        ),
    )
    def arm_disarm(self, ctx: CommandContext) -> dict[str, Any]:
        arm = ctx.params["arm"]
        armed = ctx.state.get("isArmed") is True
        if ctx.params.get("cancel") is True:
            return _cancel(ctx, arm, armed)
        if not arm:
            if not armed:
                raise CommandError(ALREADY_DISARMED, "the system is not armed")
            return _disarmed(ctx)

        names = _level_names(ctx.attributes)
        current = ctx.state.get("currentArmLevel")
        if "armLevel" in ctx.params:
            level: str | None = _resolve_level(ctx.attributes, ctx.params["armLevel"], ctx.language)
        else:
            level = current if current in names else (names[0] if names else None)
        if armed and level == (current if names else None):
            raise CommandError(ALREADY_ARMED, "the system is already armed at that level")
        state: dict[str, Any] = {"isArmed": True}
        if level is not None:
            state["currentArmLevel"] = level
        return state


def _cancel(ctx: CommandContext, arm: bool, armed: bool) -> dict[str, Any]:
    """Cancels an arming still in its exit allowance."""
    if not arm:
        raise CommandError(errors.NOT_SUPPORTED, "only arming can be cancelled")
    if not armed:
        # Nothing is arming: the system already is where a cancel would leave it.
        return {"isArmed": False}
    if not ctx.state.get("exitAllowance"):
        raise CommandError(CANCEL_TOO_LATE, "the system is armed and its exit allowance is over")
    return _disarmed(ctx)


def _disarmed(ctx: CommandContext) -> dict[str, Any]:
    state: dict[str, Any] = {"isArmed": False}
    if "exitAllowance" in ctx.state:
        state["exitAllowance"] = 0
    return state


def _levels(attributes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((attributes.get("availableArmLevels") or {}).get("levels") or [])


def _level_names(attributes: Mapping[str, Any]) -> list[str]:
    return [level["level_name"] for level in _levels(attributes)]


def _resolve_level(attributes: Mapping[str, Any], requested: str, language: str) -> str:
    """The level_name meant by `requested`: a level_name, or a synonym in the request's language."""
    levels = _levels(attributes)
    if not levels:
        raise CommandError(errors.NOT_SUPPORTED, "this system has a single arm level")
    level = _LEVEL_NAMES.require(
        levels, requested, language, code=errors.NOT_SUPPORTED, message=f"no arm level {requested!r}"
    )
    return str(level["level_name"])
