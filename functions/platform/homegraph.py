"""The HomeGraph client every outgoing call uses (Request Sync, Report State, ...).

Google's discovery client, `googleapiclient.discovery.build("homegraph", "v1", static_discovery=True)`:
  * production: Application Default Credentials with the homegraph scope (the function's service account);
  * HOMEGRAPH_ENDPOINT set (local stack, tests): that endpoint through client_options={"api_endpoint": ...} with
    anonymous credentials; no credential lookup at all, so the metadata server is never asked.

Each method returns `Ok` or raises the typed errors of functions.core.homegraph (BadRequest, Forbidden,
NotFound, Transient). Transient errors (408, 429, 5xx, timeouts, connection failures) are retried here with
exponential backoff and jitter (`RetryPolicy`); Transient is raised once the attempts are spent.

Import-light: googleapiclient, httplib2 and google.auth load on the first call, never on import, so importing
this module costs a cold start nothing. One client serves many threads: each thread gets its own HTTP
connection (httplib2 is not thread-safe); the service object is built once.

    from functions.platform.homegraph import default_client
    default_client().request_sync("user-1")
    default_client().report_state_and_notification({"requestId": ..., "agentUserId": ..., "payload": {...}})
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from functions.core import json_values, vitals
from functions.core.homegraph import (
    BadRequest,
    Forbidden,
    HomeGraphError,
    NotFound,
    Ok,
    RetryPolicy,
    Transient,
    error_class,
)
from functions.platform import config

__all__ = [
    "HOMEGRAPH_SCOPE",
    "BadRequest",
    "Forbidden",
    "HomeGraphClient",
    "HomeGraphError",
    "NotFound",
    "Ok",
    "RetryPolicy",
    "Transient",
    "application_default_credentials",
    "default_client",
    "error_class",
]

HOMEGRAPH_SCOPE = "https://www.googleapis.com/auth/homegraph"

log = logging.getLogger(__name__)


class HomeGraphClient:
    def __init__(
        self,
        *,
        endpoint: str | None = None,
        credentials: Any = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        """`endpoint` None means Google's. `credentials` None means anonymous when an endpoint is given, else
        Application Default Credentials with the homegraph scope (looked up on the first call)."""
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._credentials = credentials
        self._sleep = sleep
        self._unit_random = unit_random
        self._service: Any = None
        self._lock = threading.RLock()
        self._local = threading.local()

    @classmethod
    def from_environment(cls) -> HomeGraphClient:
        attempts, base_s, cap_s = config.homegraph_retry()
        return cls(
            endpoint=config.homegraph_endpoint(),
            timeout_s=config.homegraph_timeout_s(),
            retry=RetryPolicy(attempts=attempts, base_s=base_s, cap_s=cap_s),
        )

    # the API

    def request_sync(self, agent_user_id: str, *, asynchronous: bool = True) -> Ok:
        """devices.requestSync: {"agentUserId": ..., "async": true}; Google then sends SYNC to the fulfillment."""
        body = {"agentUserId": agent_user_id, "async": asynchronous}
        return self._call("requestSync", lambda s: s.devices().requestSync(body=body), body)

    def report_state_and_notification(self, body: Mapping[str, Any]) -> Ok:
        """devices.reportStateAndNotification with a ReportStateAndNotificationRequest body, sent as given."""
        sent = dict(body)
        not_json = json_values.problem(sent, "body")
        if not_json:
            # The discovery client would write a bare NaN or Infinity (json.dumps allows them); Google would refuse
            # it, so it is refused here, the way Google refuses a bad call: the pipeline's 400 policy applies.
            raise BadRequest("reportStateAndNotification", 400, f"not JSON: {not_json}", request_body=sent)
        return self._call(
            "reportStateAndNotification", lambda s: s.devices().reportStateAndNotification(body=sent), sent
        )

    def query(self, agent_user_id: str, device_ids: Sequence[str], request_id: str | None = None) -> Ok:
        """devices.query: the states Google holds for the devices (a device it does not know is left out, or
        answered with errorCode deviceNotFound); NotFound if it does not know the user."""
        body = {
            "requestId": request_id or str(uuid.uuid4()),
            "agentUserId": agent_user_id,
            "inputs": [{"payload": {"devices": [{"id": device_id} for device_id in device_ids]}}],
        }
        return self._call("query", lambda s: s.devices().query(body=body), body)

    def sync(self, agent_user_id: str, request_id: str | None = None) -> Ok:
        """devices.sync: the devices Google knows for the user."""
        body = {"requestId": request_id or str(uuid.uuid4()), "agentUserId": agent_user_id}
        return self._call("sync", lambda s: s.devices().sync(body=body), body)

    def delete_agent_user(self, agent_user_id: str, request_id: str | None = None) -> Ok:
        """agentUsers.delete: Google forgets the user and their devices (unlinks them)."""
        rid = request_id or str(uuid.uuid4())
        return self._call(
            "agentUsers.delete",
            lambda s: s.agentUsers().delete(agentUserId=f"agentUsers/{agent_user_id}", requestId=rid),
            {"agentUserId": agent_user_id},
        )

    # machinery

    def _call(self, method: str, make: Callable[[Any], Any], body: Mapping[str, Any]) -> Ok:
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                request, http = make(self.service()), self._http()
                started = time.monotonic()  # the call's latency: without building the client on first use
                answer = request.execute(http=http, num_retries=0)
                _log_call(method, 200, started, attempt)
                return Ok(answer if isinstance(answer, dict) else {}, attempts=attempt)
            except Exception as problem:
                error = _translate(method, problem)
                _log_call(method, error.status if error is not None else None, started, attempt)
                if error is None:
                    raise
                error.request_body, error.attempts = body, attempt
                if not isinstance(error, Transient) or attempt >= self.retry.attempts:
                    raise error from problem
                delay = self.retry.delay_s(attempt - 1, self._unit_random())
                log.warning(
                    "HomeGraph call failed transiently; retrying",
                    extra={
                        "method": method,
                        "status": error.status,
                        "reason": error.reason,
                        "attempt": attempt,
                        "retryInS": round(delay, 3),
                    },
                )
                self._sleep(delay)

    def service(self) -> Any:
        with self._lock:
            if self._service is None:
                from googleapiclient.discovery import build

                options = {"api_endpoint": self.endpoint} if self.endpoint else None
                # `http` given: build() looks for no credentials; each call passes its thread's own http.
                self._service = build(
                    "homegraph",
                    "v1",
                    http=self._new_http(),
                    static_discovery=True,
                    cache_discovery=False,
                    client_options=options,
                )
            return self._service

    def _credentials_for_calls(self) -> Any:
        with self._lock:
            if self._credentials is None:
                if self.endpoint:
                    from google.auth.credentials import AnonymousCredentials

                    self._credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
                else:
                    self._credentials = application_default_credentials()
            return self._credentials

    def _new_http(self) -> Any:
        import google_auth_httplib2  # type: ignore[import-untyped]
        import httplib2  # type: ignore[import-untyped]
        from google.auth.credentials import AnonymousCredentials

        credentials = self._credentials_for_calls()
        # A 401 makes AuthorizedHttp refresh the token and try once more; anonymous credentials have none.
        refresh = () if isinstance(credentials, AnonymousCredentials) else (401,)
        return google_auth_httplib2.AuthorizedHttp(
            credentials, http=httplib2.Http(timeout=self.timeout_s), refresh_status_codes=refresh
        )

    def _http(self) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self._new_http()
        return http


def _log_call(method: str, status: int | None, started: float, attempt: int) -> None:
    """Home Vitals' "homegraph call" line (functions.core.vitals): one per request sent, retries included, as Google
    counts each one; `status` is the HTTP status (200 for any answer the client took as success), None when the
    request got no answer (a timeout, a refused connection)."""
    fields = {
        "method": method,
        "status": status,
        "latencyMs": round((time.monotonic() - started) * 1000),
        "attempt": attempt,
        "atMs": int(time.time() * 1000),
    }
    log.log(
        logging.INFO if vitals.homegraph_call_succeeded(status) else logging.WARNING,
        vitals.HOMEGRAPH_CALL_LINE,
        extra=fields,
    )


def application_default_credentials() -> Any:
    """The function's own identity (Application Default Credentials), scoped to HomeGraph."""
    import google.auth

    credentials, _ = google.auth.default(scopes=[HOMEGRAPH_SCOPE])
    return credentials


def _translate(method: str, problem: Exception) -> HomeGraphError | None:
    """The typed error for what the discovery client, httplib2 or google.auth raised; None if it is not theirs."""
    from googleapiclient.errors import HttpError

    if isinstance(problem, HomeGraphError):
        return problem
    if isinstance(problem, HttpError):
        status = int(problem.resp.status)
        reason, status_name = _google_error(problem.content, getattr(problem.resp, "reason", "") or "")
        return error_class(status)(method, status, reason, status_name=status_name)

    import httplib2
    from google.auth import exceptions as auth_errors

    if isinstance(problem, auth_errors.DefaultCredentialsError):
        return Forbidden(method, None, f"no Application Default Credentials: {problem}")
    if isinstance(problem, auth_errors.RefreshError):
        retryable = bool(getattr(problem, "retryable", False))
        return (Transient if retryable else Forbidden)(method, None, f"credentials refresh failed: {problem}")
    if isinstance(problem, auth_errors.TransportError | httplib2.HttpLib2Error | OSError):
        kind = "timed out" if isinstance(problem, TimeoutError) else type(problem).__name__
        return Transient(method, None, f"{kind}: {problem}".strip())
    return None


def _google_error(content: bytes, fallback: str) -> tuple[str, str | None]:
    """(message, status name) from Google's JSON error body."""
    try:
        error = json.loads(content)["error"]
        return str(error.get("message") or fallback), error.get("status")
    except (ValueError, KeyError, TypeError):
        return (content.decode("utf-8", "replace")[:500] or fallback), None


_default: HomeGraphClient | None = None
_default_lock = threading.Lock()


def default_client() -> HomeGraphClient:
    """One client per process, configured from the environment (see functions/platform/config.py)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HomeGraphClient.from_environment()
        return _default
