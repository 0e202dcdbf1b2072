"""The fulfillment webhook Google Home calls: HTTP POST with the linked user's bearer token."""

from __future__ import annotations

import logging
import time

import functions_framework
from flask import Request

from functions.fulfillment import facts, wiring
from functions.fulfillment.requests import request_id_of
from functions.fulfillment.service import protocol_error, unauthorized
from functions.platform import failures, logs
from functions.platform.http import (
    BodyTooLarge,
    Reply,
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
# The service (and the Firestore client under it) is built while the server starts, not on the first request.
wiring.warm_up_in_background()


@functions_framework.http
def fulfillment(request: Request) -> Reply:
    started = time.monotonic()  # the answer's latency, for the logs (functions.fulfillment.facts)
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
        reply = wiring.service().handle(token, body, malformed=malformed)
    except Exception as problem:
        failure = failures.classify(problem)
        if not failure.retryable:
            # A bug of ours: logged with its trace, answered without one.
            log.exception("fulfillment failed", extra={"requestId": request_id_of(body)})
            facts.log_failed_answer(body, token, 500, started)
            return error_reply(500, "internal_error", "the request could not be handled")
        log.exception("storage unavailable", extra={"requestId": request_id_of(body)})
        # 503 tells Google to retry later; the body stays protocol-shaped where the request had an id.
        fallback = protocol_error(request_id_of(body), "temporarily unavailable")
        facts.log_failed_answer(body, token, 503, started)
        return json_reply(503, {**fallback.body, "error": "unavailable"}, failure.headers)
    answer = json_reply(reply.status, reply.body, reply.headers)
    facts.log_answer(reply.facts, body, token, reply.status, started)
    return answer
