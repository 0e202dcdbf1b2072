"""Fill: filling and draining, named levels by name or synonym, percentages."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import InvalidDevice
from tests.unit.traits.appliance_helpers import Harness

FILL = Harness("Fill")


def levels(ordered: bool = True, percent: bool = False) -> dict[str, Any]:
    names = [("quarter_level", ["quarter"]), ("half_level", ["half", "half way"]), ("full_level", ["full"])]
    available: dict[str, Any] = {
        "levels": [
            {"level_name": name, "level_values": [{"level_synonym": words, "lang": "en"}]} for name, words in names
        ],
        "ordered": ordered,
    }
    if percent:
        available["supportsFillPercent"] = True
    return {"availableFillLevels": available}


def test_a_simple_device_fills_and_drains() -> None:
    device = FILL.register({})
    assert device.query_states() == {"isFilled": False}
    filled = FILL.run(device, "Fill", {"fill": True})
    assert filled.reported == {"isFilled": True}
    assert FILL.run(filled.device, "Fill", {"fill": False}).reported == {"isFilled": False}


def test_filling_without_a_level_goes_to_the_last_level() -> None:
    outcome = FILL.run(FILL.register(levels()), "Fill", {"fill": True})
    assert outcome.reported == {"isFilled": True, "currentFillLevel": "full_level"}


@pytest.mark.parametrize(("said", "language"), [("half_level", "en"), ("Half Way", "en-AU"), ("half_level", "fr")])
def test_a_level_by_name_or_synonym(said: str, language: str) -> None:
    outcome = FILL.run(FILL.register(levels()), "Fill", {"fill": True, "fillLevel": said}, language=language)
    assert outcome.reported == {"isFilled": True, "currentFillLevel": "half_level"}


def test_unknown_levels_and_levels_on_a_device_without_any_are_not_supported() -> None:
    assert FILL.refused(FILL.register(levels()), "Fill", {"fill": True, "fillLevel": "brim"}) == "notSupported"
    assert FILL.refused(FILL.register(levels()), "Fill", {"fill": True, "fillLevel": "half"}, language="de") == (
        "notSupported"
    )
    assert FILL.refused(FILL.register({}), "Fill", {"fill": True, "fillLevel": "half_level"}) == "notSupported"


def test_draining_completely_leaves_no_level() -> None:
    filled = FILL.run(FILL.register(levels()), "Fill", {"fill": True}).device
    drained = FILL.run(filled, "Fill", {"fill": False})
    assert drained.reported == {"isFilled": False}
    assert "currentFillLevel" not in drained.device.state


def test_draining_to_a_level() -> None:
    filled = FILL.run(FILL.register(levels()), "Fill", {"fill": True}).device
    outcome = FILL.run(filled, "Fill", {"fill": False, "fillLevel": "quarter_level"})
    assert outcome.reported == {"isFilled": True, "currentFillLevel": "quarter_level"}


def test_percentages_need_support() -> None:
    assert FILL.refused(FILL.register(levels()), "Fill", {"fill": True, "fillPercent": 50}) == "notSupported"
    assert FILL.refused(FILL.register({}), "Fill", {"fill": True, "fillPercent": 50}) == "notSupported"


@pytest.mark.parametrize(
    ("percent", "level"), [(10, "quarter_level"), (33.4, "half_level"), (66.7, "full_level"), (100, "full_level")]
)
def test_a_percentage_reaches_the_matching_ordered_level(percent: float, level: str) -> None:
    outcome = FILL.run(FILL.register(levels(percent=True)), "Fill", {"fill": True, "fillPercent": percent})
    assert outcome.reported == {"isFilled": True, "currentFillLevel": level, "currentFillPercent": percent}


def test_a_level_sets_the_matching_percentage_and_zero_percent_drains() -> None:
    device = FILL.register(levels(percent=True))
    assert device.query_states() == {"isFilled": False, "currentFillPercent": 0}
    half = FILL.run(device, "Fill", {"fill": True, "fillLevel": "half"})
    assert half.reported == {"isFilled": True, "currentFillLevel": "half_level", "currentFillPercent": 66.67}
    empty = FILL.run(half.device, "Fill", {"fill": True, "fillPercent": 0})
    assert empty.reported == {"isFilled": False, "currentFillPercent": 0}


def test_unordered_levels_are_not_mapped_to_percentages() -> None:
    device = FILL.register(levels(ordered=False, percent=True))
    outcome = FILL.run(device, "Fill", {"fill": True, "fillPercent": 40})
    assert outcome.reported == {"isFilled": True, "currentFillPercent": 40}


def test_out_of_range_percentages_are_protocol_errors() -> None:
    assert FILL.refused(FILL.register(levels(percent=True)), "Fill", {"fill": True, "fillPercent": 101}) == (
        "protocolError"
    )


def test_states_and_attributes_rules() -> None:
    with pytest.raises(InvalidDevice, match="'brim' is not one of availableFillLevels"):
        FILL.register(levels(), {"isFilled": True, "currentFillLevel": "brim"})
    doubled = levels()
    doubled["availableFillLevels"]["levels"].append(doubled["availableFillLevels"]["levels"][0])
    with pytest.raises(InvalidDevice, match="'quarter_level' is listed twice"):
        FILL.register(doubled)
