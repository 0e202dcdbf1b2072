"""Report State: device states, proactive notifications and follow-up responses to HomeGraph.

entry.report_state is the Pub/Sub function, built in wiring; pipeline.Reporter is where to start reading.

Public API for other features, loaded on first use (importing this package costs nothing):
  * `forward_device_write`: the device-document trigger (request_sync) hands every device write over, so that
    state written straight to Firestore (EXECUTE, device clouds, the CLI) reaches HomeGraph the same way;
  * `ReportDeferred`: what it raises while a change could not be reported yet (retry the event);
  * `FirestoreReportStore`: also the fulfillment's pending-command store (follow-up responses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.reporting.api import forward_device_write
    from functions.reporting.model import ReportDeferred
    from functions.reporting.store import FirestoreReportStore

__all__ = ["FirestoreReportStore", "ReportDeferred", "forward_device_write"]


def __getattr__(name: str) -> Any:
    if name == "forward_device_write":
        from functions.reporting.api import forward_device_write

        return forward_device_write
    if name == "ReportDeferred":
        from functions.reporting.model import ReportDeferred

        return ReportDeferred
    if name == "FirestoreReportStore":
        from functions.reporting.store import FirestoreReportStore

        return FirestoreReportStore
    raise AttributeError(name)
