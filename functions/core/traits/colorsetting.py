"""ColorSetting: full-spectrum color (RGB or HSV model) and/or white color temperature in Kelvin."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, STRING, enum, integer, number, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Trait, clamp, command, require_range

MAX_RGB = 0xFFFFFF
# A new device starts white: neutral white on temperature-capable lights, full white on spectrum-only ones.
DEFAULT_TEMPERATURE_K = 4000

_HSV = obj({"hue": number(), "saturation": number(), "value": number()})
_HUE = {"type": "number", "minimum": 0, "exclusiveMaximum": 360}
_HSV_STATE = obj({"hue": _HUE, "saturation": number(0, 1), "value": number(0, 1)})


def _exactly_one(*keys: str) -> dict[str, Any]:
    """A rule for `obj(..., **rule)`: a color is given in exactly one of its forms."""
    return {"oneOf": [{"required": [key]} for key in keys]}


def _rgb_to_hsv(rgb: int) -> dict[str, float]:
    red, green, blue = ((rgb >> shift) & 0xFF for shift in (16, 8, 0))
    hue, saturation, value = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
    return {"hue": round(hue * 360, 2) % 360, "saturation": round(saturation, 4), "value": round(value, 4)}


def _hsv_to_rgb(hsv: Mapping[str, float]) -> int:
    red, green, blue = colorsys.hsv_to_rgb(hsv["hue"] / 360, hsv["saturation"], hsv["value"])
    return (round(red * 255) << 16) | (round(green * 255) << 8) | round(blue * 255)


@register
class ColorSetting(Trait):
    name = "ColorSetting"
    attributes_schema = obj(
        {
            "colorModel": enum("rgb", "hsv"),
            "colorTemperatureRange": obj(
                {"temperatureMinK": integer(0), "temperatureMaxK": integer(0)},
                required=("temperatureMinK", "temperatureMaxK"),
            ),
            "commandOnlyColorSetting": BOOLEAN,
        },
        # A color light has a spectrum model, a white range, or both.
        anyOf=[{"required": ["colorModel"]}, {"required": ["colorTemperatureRange"]}],
    )
    states_schema = obj(
        {
            "color": obj(
                {"temperatureK": integer(), "spectrumRgb": integer(0, MAX_RGB), "spectrumHsv": _HSV_STATE},
                **_exactly_one("temperatureK", "spectrumRgb", "spectrumHsv"),
            )
        },
    )
    command_only_attribute = "commandOnlyColorSetting"

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        span = attributes.get("colorTemperatureRange")
        if span:
            kelvin = int(clamp(DEFAULT_TEMPERATURE_K, span["temperatureMinK"], span["temperatureMaxK"]))
            return {"color": {"temperatureK": kelvin}}
        if attributes.get("colorModel") == "hsv":
            return {"color": {"spectrumHsv": {"hue": 0, "saturation": 0, "value": 1}}}
        return {"color": {"spectrumRgb": MAX_RGB}}

    @command(
        "ColorAbsolute",
        params=obj(
            {
                "color": obj(
                    {"name": STRING, "temperature": integer(), "spectrumRGB": integer(), "spectrumHSV": _HSV},
                    **_exactly_one("temperature", "spectrumRGB", "spectrumHSV"),
                )
            },
            required=("color",),
        ),
    )
    def absolute(self, ctx: CommandContext) -> dict[str, Any]:
        color = ctx.params["color"]  # its "name" is only what the user said
        model = ctx.attributes.get("colorModel")
        if "temperature" in color:
            span = ctx.attributes.get("colorTemperatureRange")
            if not span:
                raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this device has no color temperature range")
            require_range(color["temperature"], span["temperatureMinK"], span["temperatureMaxK"], "temperature (K)")
            return {"color": {"temperatureK": color["temperature"]}}
        if model is None:
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this device supports color temperature only")
        if "spectrumRGB" in color:
            rgb = color["spectrumRGB"]
            require_range(rgb, 0, MAX_RGB, "spectrumRGB")
            hsv = _rgb_to_hsv(rgb)
        else:
            hsv = self._hsv(color["spectrumHSV"], ctx.state.get("color") or {})
            rgb = _hsv_to_rgb(hsv)
        # Google sends the device's own model; a device answers in its model even if it gets the other one.
        return {"color": {"spectrumRgb": rgb} if model == "rgb" else {"spectrumHsv": hsv}}

    @staticmethod
    def _hsv(given: Mapping[str, float], current: Mapping[str, Any]) -> dict[str, float]:
        """The requested HSV color; components Google leaves out keep the current color's (or full ones)."""
        base = current.get("spectrumHsv") or {"hue": 0, "saturation": 1, "value": 1}
        hsv = {part: given.get(part, base.get(part, 1)) for part in ("hue", "saturation", "value")}
        require_range(hsv["saturation"], 0, 1, "saturation")
        require_range(hsv["value"], 0, 1, "value")
        hsv["hue"] = hsv["hue"] % 360  # hue is an angle: 360 is 0
        return hsv
