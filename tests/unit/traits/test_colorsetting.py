"""ColorSetting: temperature within its range, RGB and HSV spectrum colors, command-only devices."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError, InvalidDevice
from functions.core.traits.colorsetting import ColorSetting
from tests.schema_oracle import oracle
from tests.unit.traits.control_helpers import device, execute

WHITE_RANGE = {"colorTemperatureRange": {"temperatureMinK": 2000, "temperatureMaxK": 9000}}
RGB_AND_WHITE = {"colorModel": "rgb", **WHITE_RANGE}
HSV = {"colorModel": "hsv"}
MAGENTA = 0xFF00FF


def color_of(attributes: dict[str, Any], params: dict[str, Any], state: dict[str, Any] | None = None) -> Any:
    after, _ = execute(device("ColorSetting", attributes, state), "ColorAbsolute", {"color": params})
    return after.query_states()["color"]


def test_new_devices_start_white_in_their_own_model() -> None:
    assert device("ColorSetting", RGB_AND_WHITE).query_states() == {"color": {"temperatureK": 4000}}
    narrow = {"colorTemperatureRange": {"temperatureMinK": 2700, "temperatureMaxK": 3500}}
    assert device("ColorSetting", narrow).query_states() == {"color": {"temperatureK": 3500}}
    assert device("ColorSetting", {"colorModel": "rgb"}).query_states() == {"color": {"spectrumRgb": 0xFFFFFF}}
    assert device("ColorSetting", HSV).query_states() == {
        "color": {"spectrumHsv": {"hue": 0, "saturation": 0, "value": 1}}
    }


def test_temperature_within_the_range_is_set() -> None:
    assert color_of(RGB_AND_WHITE, {"name": "warm white", "temperature": 3000}) == {"temperatureK": 3000}
    assert color_of(RGB_AND_WHITE, {"temperature": 2000}) == {"temperatureK": 2000}


@pytest.mark.parametrize("kelvin", [1999, 9001])
def test_temperature_outside_the_range_is_out_of_range(kelvin: int) -> None:
    with pytest.raises(CommandError) as refused:
        color_of(RGB_AND_WHITE, {"temperature": kelvin})
    assert refused.value.code == "valueOutOfRange"


def test_temperature_on_a_spectrum_only_device_is_not_supported() -> None:
    with pytest.raises(CommandError) as refused:
        color_of(HSV, {"temperature": 3000})
    assert refused.value.code == "functionNotSupported"


def test_spectrum_on_a_temperature_only_device_is_not_supported() -> None:
    with pytest.raises(CommandError) as refused:
        color_of(WHITE_RANGE, {"spectrumRGB": MAGENTA})
    assert refused.value.code == "functionNotSupported"


def test_rgb_replaces_a_temperature_color() -> None:
    assert color_of(RGB_AND_WHITE, {"name": "magenta", "spectrumRGB": MAGENTA}) == {"spectrumRgb": MAGENTA}


@pytest.mark.parametrize("rgb", [-1, 0x1000000])
def test_rgb_beyond_24_bits_is_out_of_range(rgb: int) -> None:
    with pytest.raises(CommandError) as refused:
        color_of(RGB_AND_WHITE, {"spectrumRGB": rgb})
    assert refused.value.code == "valueOutOfRange"


def test_hsv_is_set_on_an_hsv_device() -> None:
    hsv = {"hue": 300, "saturation": 1.0, "value": 1.0}
    assert color_of(HSV, {"spectrumHSV": hsv}) == {"spectrumHsv": hsv}


def test_a_color_in_the_other_model_is_answered_in_the_device_model() -> None:
    assert color_of(HSV, {"spectrumRGB": MAGENTA}) == {"spectrumHsv": {"hue": 300, "saturation": 1, "value": 1}}
    assert color_of({"colorModel": "rgb"}, {"spectrumHSV": {"hue": 300, "saturation": 1, "value": 1}}) == {
        "spectrumRgb": MAGENTA
    }


def test_hsv_hue_wraps_and_missing_parts_keep_the_current_color() -> None:
    current = {"color": {"spectrumHsv": {"hue": 10, "saturation": 0.5, "value": 0.25}}}
    assert color_of(HSV, {"spectrumHSV": {"hue": 360}}, current) == {
        "spectrumHsv": {"hue": 0, "saturation": 0.5, "value": 0.25}
    }


def test_hsv_saturation_beyond_1_is_out_of_range() -> None:
    with pytest.raises(CommandError) as refused:
        color_of(HSV, {"spectrumHSV": {"hue": 10, "saturation": 1.5, "value": 1}})
    assert refused.value.code == "valueOutOfRange"


def test_a_color_given_two_ways_is_a_protocol_error() -> None:
    with pytest.raises(CommandError) as refused:
        color_of(RGB_AND_WHITE, {"temperature": 3000, "spectrumRGB": MAGENTA})
    assert refused.value.code == "protocolError"


def test_command_only_device_executes_but_reports_nothing() -> None:
    dev = device("ColorSetting", {**HSV, "commandOnlyColorSetting": True})
    assert dev.query_states() == {}
    after, effect = execute(dev, "ColorAbsolute", {"color": {"spectrumRGB": MAGENTA}})
    assert effect.state == {"color": {"spectrumHsv": {"hue": 300, "saturation": 1, "value": 1}}}
    assert after.state == {}


def test_a_device_needs_a_model_or_a_temperature_range() -> None:
    with pytest.raises(InvalidDevice, match=r"\(ColorSetting\)"):
        device("ColorSetting", {"commandOnlyColorSetting": True})


def test_a_stored_color_given_two_ways_is_refused() -> None:
    with pytest.raises(InvalidDevice, match="color"):
        device("ColorSetting", RGB_AND_WHITE, {"color": {"temperatureK": 3000, "spectrumRgb": MAGENTA}})


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("ColorSetting")
    for example in oracle().examples(schemas.states):
        assert ColorSetting.state_errors(RGB_AND_WHITE, example) == [], example
