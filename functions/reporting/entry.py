"""The Report State function: a CloudEvent function for google.cloud.pubsub.topic.v1.messagePublished on the state
topic (STATE_TOPIC, default device-state), delivered by a push subscription (Eventarc) with a dead-letter topic.

A message returns normally (acknowledged) once its change reached HomeGraph, needed no call, or can never be
applied (invalid: logged with the reason); the function raises (Pub/Sub redelivers) while a valid message could
not be reported yet. See functions/reporting/pipeline.py for the pipeline, and the README for the message contract.
The Reporter is built in functions.reporting.wiring; the device-document trigger comes in through
functions.reporting.forward_device_write instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import functions_framework

from functions.core.state_messages import InvalidMessage, ReportAllRequest, parse
from functions.platform import logs
from functions.platform.events import PubSubEnvelope, UndecodableMessage
from functions.reporting import wiring
from functions.reporting.model import ReportDeferred

logs.install()
log = logging.getLogger(__name__)


@functions_framework.cloud_event
def report_state(event: Any) -> None:
    envelope: PubSubEnvelope | None = None
    try:
        envelope = PubSubEnvelope(event)
        parsed = parse(envelope.data, envelope.attributes, int(time.time() * 1000))
        if isinstance(parsed, ReportAllRequest):
            wiring.reporter().handle_report_all(parsed, envelope.message_id, envelope.published_ms)
        else:
            wiring.reporter().handle(parsed, envelope.message_id, envelope.published_ms)
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
