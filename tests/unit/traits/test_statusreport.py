"""StatusReport: the list of current statuses of a device and its grouped devices."""

from __future__ import annotations

import pytest

from functions.core.errors import InvalidDevice
from tests.schema_oracle import oracle
from tests.unit.traits.appliance_helpers import Harness

STATUS = Harness("StatusReport")


def test_a_new_device_reports_nothing_wrong() -> None:
    assert STATUS.register({}).query_states() == {"currentStatusReport": []}


def test_googles_example_is_stored_and_reported_as_is() -> None:
    for example in oracle().examples(oracle().trait("StatusReport").states):
        assert STATUS.register({}, example).query_states() == example


@pytest.mark.parametrize(
    "status",
    [
        {"blocking": False, "deviceTarget": "alarm_1", "priority": -1, "statusCode": "lowBattery"},
        {"blocking": "no", "statusCode": "lowBattery"},
        {"deviceTarget": "alarm_1", "priority": 0},
        {"statusCode": ""},
        {"statusCode": "lowBattery", "message": "battery low"},
    ],
)
def test_malformed_statuses_are_refused(status: dict[str, object]) -> None:
    with pytest.raises(InvalidDevice, match=r"\(StatusReport\)"):
        STATUS.register({}, {"currentStatusReport": [status]})
