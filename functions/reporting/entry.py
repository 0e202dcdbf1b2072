"""The Report State function: a CloudEvent function for google.cloud.pubsub.topic.v1.messagePublished on the state
topic (STATE_TOPIC, default device-state), delivered by a push subscription (Eventarc) with a dead-letter topic.

A message returns normally (acknowledged) once its change reached HomeGraph, needed no call, or can never be
applied (invalid: logged with the reason); the function raises (Pub/Sub redelivers) while a valid message could
not be reported yet. See functions/reporting/pipeline.py for the pipeline, and the README for the message contract.

`forward_device_write` is what the device-document trigger (sync_on_device_change) calls for every write, so that
state written straight to Firestore (EXECUTE, device clouds, the CLI) reaches HomeGraph the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import functions_framework

from functions.core.homegraph import HomeGraph
from functions.core.ports import DeviceDocument
from functions.core.state_messages import InvalidMessage, ReportAllRequest, parse
from functions.platform import config, logs
from functions.platform.events import PubSubEnvelope, UndecodableMessage
from functions.reporting.pipeline import ReportDeferred, Reporter, Settings

logs.install()
log = logging.getLogger(__name__)

# Leaves room for the HomeGraph calls of one flush with all their retries (the client's RetryPolicy).
LEASE_MARGIN_MS = 5_000

_reporter: Reporter | None = None
_lock = threading.Lock()


def settings() -> Settings:
    from functions.core.homegraph import RetryPolicy

    attempts, base_s, cap_s = config.homegraph_retry()
    call_worst_case_s = RetryPolicy(attempts, base_s, cap_s).worst_case_s(config.homegraph_timeout_s())
    window_ms = config.report_window_ms()
    return Settings(
        window_ms=window_ms,
        wait_budget_s=config.report_wait_budget_s(),
        max_message_age_s=config.report_max_message_age_s(),
        initial_report_delay_s=config.initial_report_delay_s(),
        lease_ms=window_ms + int(call_worst_case_s * 1000) + LEASE_MARGIN_MS,
        resend_after_s=config.homegraph_timeout_s(),
    )


def _homegraph() -> HomeGraph:
    from functions.platform.homegraph import default_client

    return default_client()


def reporter() -> Reporter:
    """One per process: its in-process coordination is what lets invocations of one instance share a flush."""
    global _reporter
    with _lock:
        if _reporter is None:
            from functions.reporting.store import FirestoreReportStore

            _reporter = Reporter(FirestoreReportStore(), _homegraph, settings())
        return _reporter


@functions_framework.cloud_event
def report_state(event: Any) -> None:
    envelope: PubSubEnvelope | None = None
    try:
        envelope = PubSubEnvelope(event)
        parsed = parse(envelope.data, envelope.attributes, int(time.time() * 1000))
        if isinstance(parsed, ReportAllRequest):
            reporter().handle_report_all(parsed, envelope.message_id, envelope.published_ms)
        else:
            reporter().handle(parsed, envelope.message_id, envelope.published_ms)
    except (InvalidMessage, UndecodableMessage) as problem:
        log.warning(
            "invalid state message: acknowledged, not retried",
            extra={"messageId": envelope.message_id if envelope else None, "reason": str(problem)[:1000]},
        )
    except ReportDeferred as deferred:
        log.warning(
            "state message not reported yet: Pub/Sub will redeliver it",
            extra={"messageId": envelope.message_id if envelope else None, "reason": str(deferred)[:500]},
        )
        raise
    except Exception:
        # Storage unavailable, or a bug of ours: logged with its trace; failing makes Pub/Sub redeliver the message
        # (and, after the subscription's last attempt, park it on the dead-letter topic).
        log.exception("state message failed", extra={"messageId": envelope.message_id if envelope else None})
        raise


def forward_device_write(
    agent_user_id: str,
    device_id: str,
    before: DeviceDocument | None,
    after: DeviceDocument | None,
    event_id: str,
    event_ms: int,
) -> str:
    """For the device-document trigger: reports a state or `online` change written to the document (not one made
    by this pipeline). Raises ReportDeferred when the trigger's event should be retried."""
    return reporter().device_written(agent_user_id, device_id, before, after, event_id, event_ms)
