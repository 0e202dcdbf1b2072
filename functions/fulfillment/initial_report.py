"""After a SYNC, HomeGraph gets a full report of the user's devices, once it had time to process the SYNC.

Google learns the devices from SYNC but their states only from QUERY or Report State; reporting right after the
SYNC gets 404 for devices Google has not processed yet (Google's samples wait, and Home Assistant waits 60 s:
homeassistant/components/google_assistant/report_state.py, INITIAL_REPORT_DELAY). So the fulfillment's SYNC
publishes a report-all request on the state topic, and the Report State function reports every device's full
state INITIAL_REPORT_DELAY_S after the SYNC (see functions.reporting.pipeline).

`InitialReportAfterSync` wraps the fulfillment's store: the SYNC marks the user linked through it
(`mark_linked`), and that is when the request is published. Publishing never fails a SYNC: a failure is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from functions.core.commands import Publisher
from functions.core.ports import DeviceDocument, FulfillmentStore, Snapshot, StateWrite
from functions.core.state_messages import report_all_data

log = logging.getLogger(__name__)


class InitialReportAfterSync:
    """A FulfillmentStore that also asks for the full report whenever a SYNC marks the user linked."""

    def __init__(self, inner: FulfillmentStore, publisher: Callable[[], Publisher], topic: Callable[[], str]) -> None:
        self._inner = inner
        self._publisher = publisher
        self._topic = topic

    def load(self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str]) -> Snapshot:
        return self._inner.load(token_hash, agent_user_id, device_ids)

    def list_devices(self, agent_user_id: str) -> list[tuple[str, DeviceDocument]]:
        return self._inner.list_devices(agent_user_id)

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        return self._inner.commit_states(agent_user_id, writes)

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        self._inner.mark_linked(agent_user_id, now_ms)
        data, attributes = report_all_data(agent_user_id, now_ms)
        try:
            self._publisher().publish(self._topic(), data, attributes)
        except Exception as problem:
            log.warning("the full report after SYNC could not be requested", extra={"reason": str(problem)[:300]})

    def disconnect(self, agent_user_id: str, now_ms: int) -> int:
        return self._inner.disconnect(agent_user_id, now_ms)
