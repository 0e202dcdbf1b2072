"""What the backend can hear back from HomeGraph, and how it retries: the port every outgoing call goes through.

A call either returns `Ok` or raises one of the typed errors below, each named for what it means to the caller:

    BadRequest  400 (and other 4xx)  our request is wrong: a bug of ours; log the body and reason, never retry
    Forbidden   401, 403             credentials or permissions, or the Action is not linked; log, never retry
    NotFound    404                  Google does not know this agentUserId (not linked), or, for a report, one of
                                     its devices (not in the last SYNC Google processed): `query` tells which
    Transient   408, 429, 5xx, timeouts, connection failures: retry later (after the client's own bounded retries)

The adapter (functions/platform/homegraph.py) implements `HomeGraph`; in-process fakes can too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Ok:
    """A successful call and Google's answer (requestSync answers {})."""

    body: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 1


class HomeGraphError(Exception):
    """A call that did not succeed. `status` is the HTTP status (None for timeouts and connection failures)."""

    def __init__(
        self,
        method: str,
        status: int | None,
        reason: str,
        *,
        status_name: str | None = None,
        request_body: Mapping[str, Any] | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(f"{method}: {status if status is not None else 'no answer'} {reason}".strip())
        self.method = method
        self.status = status
        self.reason = reason
        self.status_name = status_name
        self.request_body = request_body
        self.attempts = attempts


class BadRequest(HomeGraphError):
    pass


class Forbidden(HomeGraphError):
    pass


class NotFound(HomeGraphError):
    pass


class Transient(HomeGraphError):
    pass


TRANSIENT_STATUSES = frozenset({408, 429})


def error_class(status: int | None) -> type[HomeGraphError]:
    """The meaning of an HTTP status (None: no answer at all)."""
    if status is None or status in TRANSIENT_STATUSES or status >= 500:
        return Transient
    if status in (401, 403):
        return Forbidden
    if status == 404:
        return NotFound
    return BadRequest


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter, for Transient errors only.

    The n-th retry (n = 0, 1, ...) waits between half and all of min(cap_s, base_s * 2**n): the growth spaces
    retries out when HomeGraph is struggling, the jitter keeps instances that failed together from retrying
    together, and the lower half bound keeps a retry from coming right back.
    """

    attempts: int = 4  # calls in all, the first included
    base_s: float = 0.5
    cap_s: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_s < 0 or self.cap_s < self.base_s:
            raise ValueError("RetryPolicy needs attempts >= 1 and 0 <= base_s <= cap_s")

    def delay_s(self, retry_index: int, unit_random: float) -> float:
        """The wait before retry number `retry_index` (0-based); `unit_random` is uniform in [0, 1)."""
        ceiling = min(self.cap_s, self.base_s * 2.0**retry_index)
        return ceiling / 2 + unit_random * ceiling / 2

    def worst_case_s(self, timeout_s: float) -> float:
        """The longest a call with all its retries can take when each attempt runs into `timeout_s`."""
        waits = sum(min(self.cap_s, self.base_s * 2.0**n) for n in range(self.attempts - 1))
        return self.attempts * timeout_s + waits


NO_RETRY = RetryPolicy(attempts=1)


class HomeGraph(Protocol):
    def request_sync(self, agent_user_id: str) -> Ok:
        """Asks Google to SYNC the user's devices (asynchronously: Google answers at once)."""
        ...

    def report_state_and_notification(self, body: Mapping[str, Any]) -> Ok:
        """Sends a ReportStateAndNotificationRequest body (requestId, agentUserId, eventId, payload)."""
        ...

    def query(self, agent_user_id: str, device_ids: Sequence[str], request_id: str | None = None) -> Ok:
        """devices.query: the states Google holds for the user's devices, `payload.devices` by id. A device Google
        does not know is left out of the answer (or answered with status ERROR / errorCode deviceNotFound, the
        QUERY response format the API refers to); an agentUserId it does not know gets NotFound."""
        ...
