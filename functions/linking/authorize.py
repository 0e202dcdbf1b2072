"""Account linking's authorization endpoint: the Authorization URL of the Google Home Developer Console.

GET shows the sign-in page (then the consent page); POST handles their forms; the end is a redirect back to Google
with a code and the unchanged `state`. The pages are in functions/linking/pages.py.
"""

from __future__ import annotations

import logging

import functions_framework
from flask import Request, Response
from werkzeug.exceptions import RequestEntityTooLarge

from functions.platform import failures, logs

# The sign-in form is a few hundred bytes; nothing legitimate comes near this.
MAX_FORM_BYTES = 16_384

logs.install()
log = logging.getLogger(__name__)


@functions_framework.http
def authorize(request: Request) -> Response:
    from functions.linking.pages import error_page

    if request.method not in ("GET", "POST"):
        page = error_page(405, "Method not allowed", "This page can only be opened or submitted.")
        page.headers["Allow"] = "GET, POST"
        return page
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return error_page(413, "Form too large", "The submitted form is too large.")
    # Also bounds a body sent without Content-Length; lifted afterwards, as functions-framework drains the body.
    request.max_content_length = MAX_FORM_BYTES
    try:
        from functions.linking.pages import AuthorizePages
        from functions.linking.wiring import SessionKeyMissing, default_service, session_key

        try:
            key = session_key()
        except SessionKeyMissing as missing:
            log.error("account linking is not configured: %s", missing)
            return error_page(500, "Not available", "Account linking is not set up on this service yet.")
        return AuthorizePages(request, default_service(), key).respond()
    except RequestEntityTooLarge:
        return error_page(413, "Form too large", "The submitted form is too large.")
    except Exception as problem:
        failure = failures.classify(problem, retry_after_s=5)
        if not failure.retryable:
            # A bug of ours: logged with its trace, answered without one.
            log.exception("authorize failed")
            return error_page(500, "Something went wrong", "The link request could not be handled. Please try again.")
        log.exception("account linking storage unavailable")
        page = error_page(
            503, "Temporarily unavailable", "The service is busy right now. Please try again in a moment."
        )
        page.headers.update(failure.headers)
        return page
    finally:
        request.max_content_length = None
