"""The fulfillment webhook Google Home calls: HTTP POST with the linked user's bearer token."""

from __future__ import annotations

import logging
import uuid

import functions_framework
from flask import Request
from google.api_core import exceptions as google_errors

from functions.core.challenges import PinHasher
from functions.fulfillment.requests import request_id_of
from functions.fulfillment.service import Fulfillment, protocol_error, unauthorized
from functions.platform import config, logs
from functions.platform.http import (
    BodyTooLarge,
    FlaskReply,
    bearer_token,
    error_reply,
    json_reply,
    parse_json,
    read_body,
)

# Google's requests are a few kilobytes; anything near this is not from Google.
MAX_BODY_BYTES = 1_000_000

logs.install()
log = logging.getLogger(__name__)
_service: Fulfillment | None = None


def service() -> Fulfillment:
    global _service
    if _service is None:
        from functions.core.challenges import Challenges
        from functions.fulfillment.backends import DeviceBackends
        from functions.fulfillment.initial_report import InitialReportAfterSync
        from functions.fulfillment.pin_store import FirestorePinStore
        from functions.fulfillment.store import FirestoreFulfillmentStore
        from functions.platform.pubsub import default_publisher
        from functions.reporting.store import FirestoreReportStore

        challenges = Challenges(FirestorePinStore(), _pin_hasher, lambda: config.challenge_lockout_seconds() * 1000)
        # Commands that complete later answer PENDING and go to the device's backend; a SYNC asks for the full
        # report of the user's devices. Both publish on Pub/Sub, whose client loads on the first publish only.
        follow_ups = DeviceBackends(
            FirestoreReportStore(),
            default_publisher,
            state_topic=config.state_topic,
            commands_topic=config.commands_topic,
            virtual_delay_ms=config.virtual_device_delay_ms,
            new_command_id=lambda: uuid.uuid4().hex,
        )
        _service = Fulfillment(
            InitialReportAfterSync(FirestoreFulfillmentStore(), default_publisher, config.state_topic),
            token_cache_ms=config.token_cache_seconds() * 1000,
            challenges=challenges,
            follow_ups=follow_ups,
        )
    return _service


def _pin_hasher() -> PinHasher:
    # argon2 loads when the first PIN is checked, not at cold start.
    from functions.fulfillment.pin_hashing import Argon2PinHasher

    return Argon2PinHasher()


@functions_framework.http
def fulfillment(request: Request) -> FlaskReply:
    if request.method != "POST":
        return error_reply(405, "method_not_allowed", "the fulfillment accepts POST only")
    token = bearer_token(request)
    if token is None:
        reply = unauthorized("an Authorization: Bearer token is required")
        return json_reply(reply.status, reply.body, reply.headers)
    try:
        data = read_body(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        return error_reply(413, "request_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    body: object
    malformed = None
    try:
        body = parse_json(data)
    except ValueError as problem:
        body, malformed = None, f"the body is not valid JSON: {problem}"
    try:
        reply = service().handle(token, body, malformed=malformed)
    except (
        google_errors.ServiceUnavailable,
        google_errors.DeadlineExceeded,
        google_errors.InternalServerError,
    ):
        log.exception("storage unavailable", extra={"requestId": request_id_of(body)})
        # 503 tells Google to retry later; the body stays protocol-shaped where the request had an id.
        fallback = protocol_error(request_id_of(body), "temporarily unavailable")
        return json_reply(503, {**fallback.body, "error": "unavailable"}, {"Retry-After": "1"})
    except Exception:
        # A bug of ours: logged with its trace, answered without one.
        log.exception("fulfillment failed", extra={"requestId": request_id_of(body)})
        return error_reply(500, "internal_error", "the request could not be handled")
    return json_reply(reply.status, reply.body, reply.headers)
