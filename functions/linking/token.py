"""Account linking's token endpoint: the Token URL of the Google Home Developer Console.

POST application/x-www-form-urlencoded with grant_type authorization_code or refresh_token; the client
authenticates with HTTP Basic or client_id/client_secret in the body. Answers and errors are RFC 6749's JSON.
"""

from __future__ import annotations

import logging

import functions_framework
from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from functions.core import json_values
from functions.platform import failures, logs
from functions.platform.http import Reply, error_reply

MAX_FORM_BYTES = 16_384
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

logs.install()
log = logging.getLogger(__name__)


def _error(status: int, error: str, description: str, **headers: str) -> Reply:
    return error_reply(status, error, description, headers={**NO_STORE, **headers})


@functions_framework.http
def token(request: Request) -> Reply:
    if request.method != "POST":
        return _error(405, "invalid_request", "The token endpoint accepts POST only.", Allow="POST")
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return _error(413, "invalid_request", f"The request body exceeds {MAX_FORM_BYTES} bytes.")
    # Also bounds a body sent without Content-Length; lifted afterwards, as functions-framework drains the body.
    request.max_content_length = MAX_FORM_BYTES
    grant_type = ""
    try:
        from functions.linking import oauth
        from functions.linking.wiring import default_service

        grant_type = request.form.get("grant_type", "")[:40]
        reply = oauth.token_response(default_service(), request)
    except RequestEntityTooLarge:
        return _error(413, "invalid_request", f"The request body exceeds {MAX_FORM_BYTES} bytes.")
    except Exception as problem:
        failure = failures.classify(problem)
        if not failure.retryable:
            log.exception("token request failed", extra={"grantType": grant_type})
            return _error(500, "server_error", "The request could not be handled.")
        log.exception("token storage unavailable", extra={"grantType": grant_type})
        return _error(503, "temporarily_unavailable", "Try again shortly.", **failure.headers)
    finally:
        request.max_content_length = None
    if reply.status >= 400 and isinstance(reply.body, dict):
        log.warning("token request refused", extra={"grantType": grant_type, "error": reply.body.get("error")})
    body = json_values.dumps(reply.body, compact=False) if isinstance(reply.body, dict) else str(reply.body)
    return body, reply.status, dict(reply.headers)
