"""ObjectDetection: notifications only; the detection time is epoch milliseconds."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.schema import errors as schema_errors
from functions.core.traits.objectdetection import ObjectDetection
from tests.schema_oracle import oracle

DETECTED_AT_MS = 1_700_000_000_000


def google_notifications() -> dict[str, Any]:
    schema = oracle().trait("ObjectDetection").notifications
    assert schema is not None
    return schema


def ours(payload: dict[str, Any]) -> list[str]:
    return schema_errors(ObjectDetection.notification_schema or {}, payload)


def test_google_examples_are_valid_for_us() -> None:
    for example in oracle().examples(google_notifications()):
        assert ours(example) == [], example


def test_notification_carries_only_the_categories_detected() -> None:
    payload = ObjectDetection.notification(DETECTED_AT_MS, named=["Alice", "Bob"], unfamiliar=1)
    assert payload == {
        "ObjectDetection": {
            "priority": 0,
            "detectionTimestamp": DETECTED_AT_MS,
            "objects": {"named": ["Alice", "Bob"], "unfamiliar": 1},
        }
    }
    oracle().assert_valid(google_notifications(), payload, "ObjectDetection notification")
    assert ours(payload) == []


def test_a_detection_of_nothing_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ObjectDetection.notification(DETECTED_AT_MS)


def test_a_timestamp_in_seconds_is_refused() -> None:
    payload = ObjectDetection.notification(DETECTED_AT_MS // 1000, familiar=1)
    problems = ours(payload)
    assert len(problems) == 1
    assert "detectionTimestamp" in problems[0]


@pytest.mark.parametrize(
    "detection",
    [
        {"priority": 0, "detectionTimestamp": DETECTED_AT_MS, "objects": {}},
        {"priority": 0, "detectionTimestamp": DETECTED_AT_MS, "objects": {"named": []}},
        {"priority": 0, "detectionTimestamp": DETECTED_AT_MS, "objects": {"people": 2}},
        {"priority": 0, "detectionTimestamp": DETECTED_AT_MS + 0.5, "objects": {"familiar": 1}},
        {"priority": 0, "objects": {"familiar": 1}},
        {"detectionTimestamp": DETECTED_AT_MS, "objects": {"familiar": 1}},
    ],
)
def test_notifications_google_refuses_we_refuse(detection: dict[str, Any]) -> None:
    payload = {"ObjectDetection": detection}
    assert oracle().problems(google_notifications(), payload)
    assert ours(payload)


def test_the_trait_has_no_attributes_states_or_commands() -> None:
    assert ObjectDetection.attribute_keys() == frozenset()
    assert ObjectDetection.state_keys({}) == frozenset()
    assert ObjectDetection.commands == {}
