"""The one mapping of storage and transport failures to what a function answers.

Firestore (and Pub/Sub) being briefly unavailable is worth a retry: HTTP functions answer 503 with Retry-After,
event functions fail with 503 so that Eventarc or Pub/Sub deliver the event again. Anything else raised by our
own code is a bug: logged with its trace by the caller, answered 500 without one.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.api_core import exceptions as google_errors
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

# Aborted is a transaction that lost to a concurrent one: the same call succeeds when tried again.
UNAVAILABLE: tuple[type[Exception], ...] = (
    google_errors.ServiceUnavailable,
    google_errors.DeadlineExceeded,
    google_errors.InternalServerError,
    google_errors.Aborted,
)
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class Failure:
    status: int  # 503: try again later; 500: a bug of ours
    retryable: bool
    retry_after_s: int | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


def classify(problem: BaseException, retry_after_s: int = RETRY_AFTER_S) -> Failure:
    if isinstance(problem, UNAVAILABLE) or lost_every_attempt(problem):
        return Failure(503, True, retry_after_s)
    return Failure(500, False, None)


def lost_every_attempt(problem: BaseException) -> bool:
    """Whether a Firestore transaction failed because it lost to concurrent ones: the client's transaction runner
    gives up after its attempts with a ValueError raised from the last Aborted, and an Aborted read inside the
    transaction comes out as it is. Any other ValueError is a bug."""
    if isinstance(problem, google_errors.Aborted):
        return True
    return isinstance(problem, ValueError) and isinstance(problem.__cause__, google_errors.Aborted)


def event_failure(problem: BaseException, description: str) -> HTTPException:
    """What an event function raises for `problem`: 503 (delivered again) while storage is unavailable, else 500."""
    if classify(problem).retryable:
        return ServiceUnavailable(f"storage unavailable: {description}")
    return InternalServerError(description)
