"""StartStop: starting, stopping and (where `pausable`) pausing an operation, optionally in named zones.

`availableZones` lists the zones a device knows, but Google documents the list as not exclusive: users may
name other zones, and the device is trusted to resolve them. Zones are refused only by devices that list none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, STRING, array, exclusive, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, command


@register
class StartStop(Trait):
    name = "StartStop"
    attributes_schema = obj({"pausable": BOOLEAN, "availableZones": array(STRING)})
    states_schema = obj(
        {"isRunning": BOOLEAN, "isPaused": BOOLEAN, "activeZones": array(STRING)},
        # A paused device is not running (Google: isPaused implies isRunning is false).
        **exclusive("isRunning", "isPaused"),
    )

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"isRunning": False}
        if attributes.get("pausable") is True:
            state["isPaused"] = False
        if "availableZones" in attributes:
            state["activeZones"] = []
        return state

    @command(
        "StartStop",
        params=obj({"start": BOOLEAN, "zone": STRING, "multipleZones": array(STRING)}, required=("start",)),
        long_running=True,
    )
    def start_stop(self, ctx: CommandContext) -> dict[str, Any]:
        requested = list(ctx.params.get("multipleZones") or [])
        if "zone" in ctx.params:
            requested.insert(0, ctx.params["zone"])
        known = ctx.attributes.get("availableZones")
        if requested and known is None:
            raise CommandError(errors.NOT_SUPPORTED, "this device does not run in zones")

        state: dict[str, Any] = {"isRunning": bool(ctx.params["start"])}
        if ctx.attributes.get("pausable") is True:
            state["isPaused"] = False
        if known is not None:
            # Stopping ends every zone; starting without a zone runs the device everywhere (no zone active).
            state["activeZones"] = _spelled_as_known(requested, known) if ctx.params["start"] else []
        return state

    @command("PauseUnpause", params=obj({"pause": BOOLEAN}, required=("pause",)))
    def pause_unpause(self, ctx: CommandContext) -> dict[str, Any]:
        if ctx.attributes.get("pausable") is not True:
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this device cannot be paused")
        running = ctx.state.get("isRunning") is True
        paused = ctx.state.get("isPaused") is True
        if ctx.params["pause"]:
            if running:
                return {"isRunning": False, "isPaused": True}
            # Neither running nor paused: there is nothing to pause, and nothing changes.
            return {"isRunning": False, "isPaused": paused}
        if paused:
            return {"isRunning": True, "isPaused": False}
        # Unpausing a device that is not paused leaves it as it is.
        return {"isRunning": running, "isPaused": False}


def _spelled_as_known(requested: list[str], known: list[str]) -> list[str]:
    """The requested zones, each spelled as in availableZones when it matches one regardless of case."""
    by_folded = {zone.casefold(): zone for zone in known}
    zones: list[str] = []
    for zone in requested:
        spelled = by_folded.get(zone.casefold(), zone)
        if spelled not in zones:
            zones.append(spelled)
    return zones
