"""Scene: a named, virtual device that applies a group of settings at once ("start party mode")."""

from __future__ import annotations

from functions.core import errors
from functions.core.schema import BOOLEAN, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, command


@register
class Scene(Trait):
    name = "Scene"
    attributes_schema = obj({"sceneReversible": BOOLEAN})
    # Scenes have no state: activating one changes other devices, which report their own states.

    @command("ActivateScene", params=obj({"deactivate": BOOLEAN}, required=("deactivate",)))
    def activate(self, ctx: CommandContext) -> Effect:
        if ctx.params["deactivate"] and ctx.attributes.get("sceneReversible") is not True:
            # Only scenes that remember what they changed can be cancelled (sceneReversible, default false).
            raise errors.CommandError(errors.ACTION_NOT_AVAILABLE, "this scene cannot be cancelled")
        return Effect()
