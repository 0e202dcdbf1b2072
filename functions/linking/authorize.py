"""Account linking's authorization endpoint: the Authorization URL of the Google Home Developer Console.

GET shows the sign-in page (then the consent page); POST handles their forms; the end is a redirect back to Google
with a code and the unchanged `state`. `GET ?asset=logo` serves the brand's logo when it is a shipped file. The pages
are in functions/linking/pages.py.
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
    from functions.linking import pages

    if request.method not in ("GET", "POST"):
        page = pages.error_page(request, 405, pages.METHOD_NOT_ALLOWED)
        page.headers["Allow"] = "GET, POST"
        return page
    if request.method == "GET" and "asset" in request.args:
        return pages.asset(request)  # no storage, no session key
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return pages.error_page(request, 413, pages.FORM_TOO_LARGE)
    # Also bounds a body sent without Content-Length; lifted afterwards, as functions-framework drains the body.
    request.max_content_length = MAX_FORM_BYTES
    try:
        from functions.linking.wiring import SessionKeyMissing, default_service, session_key

        try:
            key = session_key()
        except SessionKeyMissing as missing:
            log.error("account linking is not configured: %s", missing)
            return pages.error_page(request, 500, pages.NOT_SET_UP)
        return pages.AuthorizePages(request, default_service(), key).respond()
    except RequestEntityTooLarge:
        return pages.error_page(request, 413, pages.FORM_TOO_LARGE)
    except Exception as problem:
        failure = failures.classify(problem, retry_after_s=5)
        if not failure.retryable:
            # A bug of ours: logged with its trace, answered without one.
            log.exception("authorize failed")
            return pages.error_page(request, 500, pages.BROKEN)
        log.exception("account linking storage unavailable")
        page = pages.error_page(request, 503, pages.BUSY)
        page.headers.update(failure.headers)
        return page
    finally:
        request.max_content_length = None
