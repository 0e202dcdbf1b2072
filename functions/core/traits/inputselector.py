"""InputSelector: switch the audio or video input of a device (HDMI ports, USB, Bluetooth sources)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from functions.core import errors
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, command

# Google answers the user with the first synonym, so each language lists at least one.
_NAMES = array(
    obj(
        {"lang": NON_EMPTY_STRING, "name_synonym": array(STRING, min_items=1)},
        required=("lang", "name_synonym"),
    )
)
_INPUT = obj({"key": NON_EMPTY_STRING, "names": _NAMES}, required=("key", "names"))
_INPUT_NAMES = _localized.NamedEntries(name_key="key", values_key="names", words_key="name_synonym")


def _inputs(ctx: CommandContext) -> Sequence[Mapping[str, Any]]:
    return ctx.attributes.get("availableInputs") or []


def _step(ctx: CommandContext, step: int) -> Effect:
    """The input `step` places after the current one in the device's order, wrapping around at either end."""
    if ctx.attributes.get("orderedInputs") is not True:
        raise errors.CommandError(
            errors.FUNCTION_NOT_SUPPORTED, "next and previous input need orderedInputs on this device"
        )
    keys = [entry["key"] for entry in _inputs(ctx)]
    current = ctx.state.get("currentInput")
    # Unknown current input (a command-only device keeps none): next starts at the first, previous at the last.
    start = keys.index(current) if current in keys else (-1 if step > 0 else 0)
    index = (start + step) % len(keys)
    return Effect(state={"currentInput": keys[index]})


@register
class InputSelector(Trait):
    name = "InputSelector"
    # A selector without inputs could never answer a QUERY (currentInput is required), so at least one is listed.
    attributes_schema = obj(
        {
            "availableInputs": array(_INPUT, min_items=1),
            "commandOnlyInputSelector": BOOLEAN,
            "orderedInputs": BOOLEAN,
        },
        required=("availableInputs",),
    )
    states_schema = obj({"currentInput": STRING})
    command_only_attribute = "commandOnlyInputSelector"

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if problems or "availableInputs" not in attributes:
            return problems
        return _INPUT_NAMES.listed_twice(
            attributes["availableInputs"], f"attributes ({cls.name}).availableInputs", "key "
        )

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        inputs = attributes.get("availableInputs") or []
        return {"currentInput": inputs[0]["key"]} if inputs else {}

    @command("SetInput", params=obj({"newInput": STRING}, required=("newInput",)))
    def set_input(self, ctx: CommandContext) -> Effect:
        wanted = ctx.params["newInput"]
        found = _INPUT_NAMES.require(
            _inputs(ctx), wanted, ctx.language, code=errors.NOT_SUPPORTED, message=f"no input {wanted!r} on this device"
        )
        return Effect(state={"currentInput": found["key"]})

    @command("NextInput")
    def next_input(self, ctx: CommandContext) -> Effect:
        return _step(ctx, 1)

    @command("PreviousInput")
    def previous_input(self, ctx: CommandContext) -> Effect:
        return _step(ctx, -1)
