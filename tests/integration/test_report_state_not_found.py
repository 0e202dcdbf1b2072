"""A 404 from Report State for a device Google does not know, end to end: `report_state` on the emulators (the
fixtures of tests/integration/test_report_state.py), the HomeGraph stand-in playing Google, and the fulfillment
served over HTTP, so that the stand-in's SYNC after a requestSync reaches it as Google's would.

Google answers 404 to a report naming a device the last SYNC did not list; devices.query for the user then answers
without that device. The user stays linked, gets a Request Sync, and their other devices are reported at once;
after the SYNC the full report brings the device's state too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import REPO_ROOT
from tests.integration.test_report_state import Pipeline, now_ms, pipeline, served  # noqa: F401 - fixtures
from tests.unit.reporting_helpers import lamp, message_json
from tools import emulators
from tools.homegraph_standin import FirestoreTokenSource
from tools.pubsub_local import ServedFunction

pytestmark = pytest.mark.emulator

ON = {"on": True, "brightness": 10, "online": True}


@pytest.fixture(scope="module")
def fulfillment(firestore_emulator: emulators.Emulator) -> Iterator[ServedFunction]:
    """The fulfillment over HTTP in this process (its SYNC asks `report_state` for the full report)."""
    import functions_framework

    function = ServedFunction(functions_framework.create_app(target="fulfillment", source=str(REPO_ROOT / "main.py")))
    yield function
    function.stop()


def test_a_device_google_does_not_know_is_synced_and_the_others_reported_at_once(
    pipeline: Pipeline,  # noqa: F811 - the fixture imported above
    fulfillment: ServedFunction,
    firestore_db: Any,
) -> None:
    from functions.core.device import parse_device

    standin = pipeline.standin
    standin.fulfillment_url = fulfillment.url + "/"
    standin.token_source = FirestoreTokenSource(firestore_db)
    pipeline.link("alice", lamp("lamp-1"), lamp("lamp-2"))
    # Google knows lamp-1 only: lamp-2 was added after the last SYNC Google processed.
    standin.unlink("alice")
    standin.link("alice", sync=False, devices=[parse_device("lamp-1", pipeline.device("lamp-1")).sync_view()])

    pipeline.publish(message_json("lamp-1", {"on": True}, now_ms()))
    pipeline.publish(message_json("lamp-2", {"on": True}, now_ms()))
    pipeline.settle(2)
    assert 404 in [c["status"] for c in pipeline.reports(status=None)]
    assert all(q["status"] == 200 for q in standin.calls("query", "alice"))
    # The known device's state reached Google; the unknown one's did not (yet).
    first = pipeline.validated()[0]
    assert first["payload"]["devices"]["states"] == {"lamp-1": ON}
    [sync] = standin.wait_for_calls("requestSync", 1, "alice", timeout_s=30)
    assert (sync["request"], sync["status"]) == ({"agentUserId": "alice", "async": True}, 200)
    user = pipeline.user()
    assert user["linked"] is True
    assert "unlinkedBy" not in user

    # Google runs SYNC (which lists both devices now); INITIAL_REPORT_DELAY_S later the full report sends lamp-2.
    assert standin.wait_idle(30)
    [synced] = standin.calls("fulfillment.SYNC", "alice")
    assert synced["status"] == 200
    assert {d["id"] for d in synced["response"]["payload"]["devices"]} == {"lamp-1", "lamp-2"}
    pipeline.settle(3)  # the two state messages and the report-all request
    bodies = pipeline.validated()
    assert bodies[-1]["payload"]["devices"]["states"]["lamp-2"] == ON
    [full] = [c for c in pipeline.reports() if "lamp-2" in c["request"]["payload"]["devices"]["states"]]
    assert full["at"] > sync["at"]
    assert len(standin.calls("requestSync", "alice")) == 1
    user = pipeline.user()
    assert user["linked"] is True
    assert "unlinkedBy" not in user
