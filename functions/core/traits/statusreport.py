"""StatusReport: the current errors and exceptions of a device and of the devices grouped under it.

The trait has no attributes nor commands. Google documents it for security systems, whose sensors appear as
the `deviceTarget` of each status; any device with this trait may report it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, array, integer, obj
from functions.core.traits import register
from functions.core.traits.base import Trait

_STATUS = obj(
    {
        "blocking": BOOLEAN,  # true when this status prevents further commands from running
        "deviceTarget": NON_EMPTY_STRING,  # id of the device the status is about (this one or a grouped one)
        "priority": integer(0),  # 0 is the highest; Google may only tell the highest ones
        "statusCode": NON_EMPTY_STRING,  # one of Google's error and exception codes, e.g. lowBattery
    },
    # A status says nothing without its code; the other fields are optional, as in Google's reference.
    required=("statusCode",),
)


@register
class StatusReport(Trait):
    name = "StatusReport"
    states_schema = obj({"currentStatusReport": array(_STATUS)})

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Nothing to report."""
        return {"currentStatusReport": []}
