"""Rotation: how far a device (blind slats, a display) is turned, in degrees within a range and/or percent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, number, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, command, require_range

DEGREES = "rotationDegrees"
PERCENT = "rotationPercent"


def _span(attributes: Mapping[str, Any]) -> tuple[float, float] | None:
    degrees = attributes.get("rotationDegreesRange")
    if not degrees:
        return None
    return degrees["rotationDegreesMin"], degrees["rotationDegreesMax"]


def _wrap(value: float, low: float, high: float) -> float:
    """A position beyond the range of a continuously rotating device comes round again from the other end."""
    if low <= value <= high or high <= low:
        return value
    return low + (value - low) % (high - low)


@register
class Rotation(Trait):
    name = "Rotation"
    attributes_schema = obj(
        {
            "supportsDegrees": BOOLEAN,
            "supportsPercent": BOOLEAN,
            "rotationDegreesRange": obj(
                {"rotationDegreesMin": number(0, 360), "rotationDegreesMax": number(0, 360)},
                required=("rotationDegreesMin", "rotationDegreesMax"),
            ),
            "supportsContinuousRotation": BOOLEAN,
            "commandOnlyRotation": BOOLEAN,
        },
        required=("supportsDegrees", "supportsPercent"),
        allOf=[
            # Degrees need their range, and a device rotates in at least one of the two ways.
            {
                "if": {"properties": {"supportsDegrees": {"const": True}}},
                "then": {"required": ["rotationDegreesRange"]},
            },
            {
                "anyOf": [
                    {"properties": {"supportsDegrees": {"const": True}}},
                    {"properties": {"supportsPercent": {"const": True}}},
                ]
            },
        ],
    )
    states_schema = obj({DEGREES: number(), PERCENT: number(0, 100)})
    command_only_attribute = "commandOnlyRotation"

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        span = _span(attributes)
        return cls._position(attributes, degrees=span[0] if span else None, percent=0)

    @command(
        "RotateAbsolute",
        params={
            "oneOf": [
                obj({DEGREES: number()}, required=(DEGREES,)),
                obj({PERCENT: number()}, required=(PERCENT,)),
            ]
        },
    )
    def rotate(self, ctx: CommandContext) -> dict[str, Any]:
        attributes = ctx.attributes
        continuous = attributes.get("supportsContinuousRotation") is True
        span = _span(attributes)
        if DEGREES in ctx.params:
            if not attributes.get("supportsDegrees") or span is None:
                raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this device does not rotate by degrees")
            degrees = ctx.params[DEGREES]
            if continuous:
                degrees = _wrap(degrees, *span)
            require_range(degrees, *span, "rotationDegrees")
            return self._position(attributes, degrees=degrees, percent=None)
        if not attributes.get("supportsPercent"):
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this device does not rotate by percent")
        percent = ctx.params[PERCENT]
        if continuous:
            percent = _wrap(percent, 0, 100)
        require_range(percent, 0, 100, "rotationPercent")
        return self._position(attributes, degrees=None, percent=percent)

    @staticmethod
    def _position(attributes: Mapping[str, Any], degrees: float | None, percent: float | None) -> dict[str, Any]:
        """Both reported forms of one position: the one given, and the other derived along the degree range."""
        span = _span(attributes)
        if span is not None:
            low, high = span
            if degrees is None and percent is not None:
                degrees = round(low + (high - low) * percent / 100, 2)
            elif percent is None and degrees is not None:
                percent = round(100 * (degrees - low) / (high - low), 2) if high > low else 0
        state: dict[str, Any] = {}
        if attributes.get("supportsDegrees") and degrees is not None:
            state[DEGREES] = degrees
        if attributes.get("supportsPercent") and percent is not None:
            state[PERCENT] = percent
        return state
