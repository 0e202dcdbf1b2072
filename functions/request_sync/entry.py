"""sync_on_device_change: a Firestore trigger (google.cloud.firestore.document.v1.written on
users/{agentUserId}/devices/{deviceId}) that asks Google to SYNC when a user's devices changed in a way Google sees.

The event becomes (user, change commit time, event id); functions.request_sync.triggers decides whether it matters
and functions.request_sync.service coalesces the calls. Answers: 200 when the event is dealt with (synced, coalesced,
ignored, or dropped as malformed or too old: redelivering those would never help); 503 when the change is not synced
yet (HomeGraph or Firestore failed transiently, or the coalescing budget ran out), so that Eventarc delivers the
event again. Deploy the trigger with retries on (gen2: --retry) and a timeout above REQUEST_SYNC_OWNER_BUDGET_S.

Heavy modules (google-events, the HomeGraph client, the Firestore adapters) load on the first event only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import functions_framework
from werkzeug.exceptions import ServiceUnavailable

from functions.core.times import parse_rfc3339
from functions.platform import failures, logs
from functions.request_sync import wiring
from functions.request_sync.service import SyncDeferred, is_too_old
from functions.request_sync.triggers import change_instant_us, device_path, sync_reason

logs.install()
log = logging.getLogger(__name__)


def event_time_us(value: Any) -> tuple[int, bool] | None:
    """(microseconds since the epoch, whether only whole seconds were given) of a CloudEvent `time`."""
    try:
        instant = parse_rfc3339(value)
    except ValueError:
        return None
    return instant.epoch_us, instant.whole_seconds


def _report_state_change(
    agent_user_id: str, device_id: str, change: Any, attributes: dict[str, Any], context: dict[str, Any]
) -> None:
    """Hands a state or `online` change to the Report State pipeline (functions/reporting/pipeline.py), which ignores
    its own writes and reports the rest; the event is retried while the change could not be reported yet."""
    from functions.reporting import ReportDeferred, forward_device_write

    when = event_time_us(attributes.get("time"))
    event_ms = when[0] // 1000 if when else time.time_ns() // 1_000_000
    try:
        forward_device_write(agent_user_id, device_id, change.before, change.after, str(context["eventId"]), event_ms)
    except ReportDeferred as deferred:
        log.warning(
            "state report deferred; the event will be delivered again", extra={**context, "reason": str(deferred)}
        )
        raise ServiceUnavailable(str(deferred)) from deferred


@functions_framework.cloud_event
def sync_on_device_change(event: Any) -> None:
    from functions.platform.events import MalformedEvent, decode

    received_us = time.time_ns() // 1000
    attributes = event.get_attributes()
    event_id = str(attributes.get("id", ""))
    context: dict[str, Any] = {"eventId": event_id, "eventType": attributes.get("type")}
    try:
        change = decode(event.data)
    except MalformedEvent as problem:
        log.error("device event dropped: malformed", extra={**context, "reason": str(problem)})
        return
    named = device_path(str(attributes.get("document") or change.document))
    if named is None:
        log.warning(
            "event for a document that is not a device; ignored", extra={**context, "document": change.document}
        )
        return
    agent_user_id, device_id = named
    context.update(agentUserId=agent_user_id, deviceId=device_id)
    # State written straight to the document (EXECUTE, device clouds, the CLI) goes to HomeGraph by Report State.
    _report_state_change(agent_user_id, device_id, change, attributes, context)
    reason = sync_reason(change.before, change.after)
    if reason is None:
        # Every state change (EXECUTE, device clouds) lands here: not worth a log line each.
        log.debug("no request sync: only state or bookkeeping changed", extra=context)
        return
    context["change"] = reason.describe()
    when = event_time_us(attributes.get("time"))
    if when is None:
        log.error("device event dropped: no valid time", extra={**context, "time": attributes.get("time")})
        return
    settings = wiring.service().settings
    now_ms = received_us // 1000
    if is_too_old(when[0] // 1000, now_ms, settings):
        log.warning(
            "device event dropped: older than the maximum age",
            extra={**context, "ageS": round(now_ms / 1000 - when[0] / 1e6, 1), "maxAgeS": settings.max_event_age_s},
        )
        return
    change_us = change_instant_us(change.after_update_us, when[0], when[1], received_us)
    try:
        wiring.service().on_device_change(agent_user_id, change_us, event_id)
    except SyncDeferred as deferred:
        log.warning(
            "request sync deferred; the event will be delivered again", extra={**context, "reason": str(deferred)}
        )
        raise ServiceUnavailable(str(deferred)) from deferred
    except Exception as problem:
        answer = failures.event_failure(problem, "request sync failed")
        if isinstance(answer, ServiceUnavailable):
            log.warning(
                "storage unavailable; the event will be delivered again", extra={**context, "reason": str(problem)}
            )
        else:
            log.exception("request sync failed", extra=context)
        raise answer from problem
