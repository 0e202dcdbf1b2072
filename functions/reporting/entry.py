"""The Report State function: a CloudEvent function for google.cloud.pubsub.topic.v1.messagePublished on the state
topic (STATE_TOPIC, default device-state), delivered by a push subscription (Eventarc) with a dead-letter topic.

A message returns normally (acknowledged) once its change reached HomeGraph, or needed no call; a message, or a
part of one, that can never be applied (undecodable, invalid, too old, for an unknown device) is acknowledged too,
and goes to the rejection topic (REJECTED_TOPIC, functions/reporting/rejections.py) with the reason. The function
raises (Pub/Sub redelivers) while a valid message could not be reported yet. See functions/reporting/pipeline.py
for the pipeline, and the README for the message contract. The Reporter is built in functions.reporting.wiring;
the device-document trigger comes in through functions.reporting.forward_device_write instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import functions_framework

from functions.core.commands import PENDING_TIMEOUTS_KIND
from functions.core.state_messages import KIND_ATTRIBUTE, InvalidMessage, ReportAllRequest, named_ids, parse
from functions.platform import logs
from functions.platform.events import PubSubEnvelope, UndecodableMessage
from functions.reporting import wiring
from functions.reporting.model import ReportDeferred

logs.install()
log = logging.getLogger(__name__)


@functions_framework.cloud_event
def report_state(event: Any) -> None:
    try:
        envelope = PubSubEnvelope(event)
    except UndecodableMessage as undecodable:
        _reject(undecodable.raw, undecodable.message_id, str(undecodable))
        return
    fields = {"messageId": envelope.message_id}
    try:
        if envelope.attributes.get(KIND_ATTRIBUTE) == PENDING_TIMEOUTS_KIND:
            # The minute's sweep (Cloud Scheduler): pending commands nobody completed are given up.
            wiring.reporter().give_up_overdue(envelope.message_id, envelope.published_ms)
            return
        parsed = parse(envelope.data, envelope.attributes, int(time.time() * 1000))
        if isinstance(parsed, ReportAllRequest):
            wiring.reporter().handle_report_all(parsed, envelope.message_id, envelope.published_ms)
            return

        def refused(reason: str) -> None:
            _reject(envelope.data, envelope.message_id, reason, parsed.agent_user_id, parsed.device_id)

        wiring.reporter().handle(parsed, envelope.message_id, envelope.published_ms, refused)
    except InvalidMessage as problem:
        _reject(envelope.data, envelope.message_id, str(problem), *named_ids(envelope.data))
    except ReportDeferred as deferred:
        log.warning(
            "state message not reported yet: Pub/Sub will redeliver it", extra={**fields, "reason": str(deferred)[:500]}
        )
        raise
    except Exception:
        # Storage unavailable, or a bug of ours: logged with its trace; failing makes Pub/Sub redeliver the message
        # (and, after the subscription's last attempt, park it on the dead-letter topic).
        log.exception("state message failed", extra=fields)
        raise


def _reject(
    data: bytes, message_id: str, reason: str, agent_user_id: str | None = None, device_id: str | None = None
) -> None:
    """Acknowledged, not retried: a redelivery would be refused the same way. The device cloud hears why on the
    rejection topic; if that publish fails, the invocation fails and the message comes again."""
    log.warning(
        "state message refused: acknowledged, not retried; sent to the rejection topic",
        extra={"messageId": message_id, "agentUserId": agent_user_id, "deviceId": device_id, "reason": reason[:1000]},
    )
    wiring.rejections().reject(data, message_id, reason, agent_user_id, device_id)
