"""ObjectDetection: a device (doorbell, camera) that tells the user what or whom it has detected.

The trait has no attributes, states nor commands: it is only notifications, announced on speakers and
displays (by default after a doorbell chime).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from functions.core.schema import NON_EMPTY_STRING, array, integer, obj
from functions.core.traits import register
from functions.core.traits.base import Trait

# Google wants epoch milliseconds. Any time after March 1973 in milliseconds is above this bound, while a
# current time in seconds (about 1.7e9) is far below it: the bound catches timestamps sent in seconds.
EARLIEST_DETECTION_MS = 100_000_000_000

_DETECTED = obj(
    {
        "named": array(NON_EMPTY_STRING, min_items=1),  # labels the user gave to recognised people or objects
        "familiar": integer(0),  # recognised by the user but unlabelled
        "unfamiliar": integer(0),  # detected, possibly unknown to the user
        "unclassified": integer(0),  # detected but not classified by the device
    },
    minProperties=1,
)

_DETECTION = obj(
    {
        "priority": integer(0),  # 0: spoken aloud, the only level Google supports today
        "detectionTimestamp": integer(EARLIEST_DETECTION_MS),  # epoch milliseconds of the detection
        "objects": _DETECTED,
    },
    required=("priority", "detectionTimestamp", "objects"),
)


@register
class ObjectDetection(Trait):
    name = "ObjectDetection"
    # The per-device share of a Report State `notifications` object, keyed by the trait name as Google has it.
    notification_schema = obj({"ObjectDetection": _DETECTION}, required=("ObjectDetection",))

    @staticmethod
    def notification(
        detected_at_ms: int,
        named: Iterable[str] = (),
        familiar: int = 0,
        unfamiliar: int = 0,
        unclassified: int = 0,
        priority: int = 0,
    ) -> dict[str, Any]:
        """A detection at `detected_at_ms` (epoch milliseconds); categories with nothing in them are left out."""
        objects: dict[str, Any] = {}
        labels = list(named)
        if labels:
            objects["named"] = labels
        for category, count in (("familiar", familiar), ("unfamiliar", unfamiliar), ("unclassified", unclassified)):
            if count:
                objects[category] = count
        if not objects:
            raise ValueError("a detection needs at least one detected object")
        return {"ObjectDetection": {"priority": priority, "detectionTimestamp": detected_at_ms, "objects": objects}}
