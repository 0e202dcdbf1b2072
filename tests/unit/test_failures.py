"""The one failure mapping (functions/platform/failures.py): what is worth a retry answers 503, our bugs 500."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as google_errors

from functions.platform import failures


def raised_from(problem: BaseException, cause: BaseException) -> BaseException:
    try:
        raise problem from cause
    except BaseException as chained:  # the chained exception is what the test needs
        return chained


@pytest.mark.parametrize(
    "problem",
    [
        google_errors.ServiceUnavailable("down"),
        google_errors.Aborted("lost a race"),
        # The Firestore client's transaction runner, after its last attempt lost to a concurrent transaction.
        raised_from(ValueError("Failed to commit transaction in 5 attempts."), google_errors.Aborted("lock timeout")),
    ],
    ids=["unavailable", "aborted", "transaction-gave-up"],
)
def test_what_succeeds_when_tried_again_is_a_503_with_retry_after(problem: BaseException) -> None:
    failure = failures.classify(problem, retry_after_s=7)
    assert (failure.status, failure.retryable, failure.headers) == (503, True, {"Retry-After": "7"})


@pytest.mark.parametrize(
    "problem",
    [ValueError("a bug"), raised_from(KeyError("x"), ValueError("another")), google_errors.PermissionDenied("no")],
    ids=["bug", "bug-from-bug", "permission"],
)
def test_anything_else_is_ours_a_500(problem: BaseException) -> None:
    failure = failures.classify(problem)
    assert (failure.status, failure.retryable, failure.headers) == (500, False, {})
