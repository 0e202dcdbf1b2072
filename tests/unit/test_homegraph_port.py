"""The meaning of HomeGraph's statuses and the retry policy's waits."""

from __future__ import annotations

import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.core.homegraph import (
    NO_RETRY,
    BadRequest,
    Forbidden,
    HomeGraph,
    NotFound,
    RetryPolicy,
    Transient,
    error_class,
)
from functions.platform.homegraph import HomeGraphClient
from tests.fakes.memory_sync import ScriptedHomeGraph
from tests.unit.reporting_helpers import RecordingHomeGraph


@pytest.mark.parametrize(
    ("status", "meaning"),
    [
        (400, BadRequest),
        (409, BadRequest),
        (413, BadRequest),
        (401, Forbidden),
        (403, Forbidden),
        (404, NotFound),
        (408, Transient),
        (429, Transient),
        (500, Transient),
        (503, Transient),
        (504, Transient),
        (None, Transient),
    ],
)
def test_each_status_has_its_meaning(status: int | None, meaning: type) -> None:
    assert error_class(status) is meaning


def test_waits_double_up_to_the_cap_and_stay_in_their_upper_half() -> None:
    policy = RetryPolicy(attempts=6, base_s=0.5, cap_s=4.0)
    assert [policy.delay_s(n, 0.0) for n in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert [policy.delay_s(n, 0.999999) for n in range(5)] == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0], rel=1e-5)


@given(st.integers(min_value=0, max_value=60), st.floats(min_value=0, max_value=1, exclude_max=True))
def test_every_wait_is_bounded(retry_index: int, unit: float) -> None:
    policy = RetryPolicy(attempts=4, base_s=0.5, cap_s=8.0)
    wait = policy.delay_s(retry_index, unit)
    ceiling = min(8.0, 0.5 * 2**retry_index)
    assert ceiling / 2 <= wait <= ceiling


def test_worst_case_counts_every_attempt_and_wait() -> None:
    assert RetryPolicy(attempts=4, base_s=0.5, cap_s=8.0).worst_case_s(10) == 40 + 0.5 + 1 + 2
    assert NO_RETRY.worst_case_s(10) == 10


@pytest.mark.parametrize("fields", [{"attempts": 0}, {"base_s": -1}, {"base_s": 2, "cap_s": 1}])
def test_nonsense_policies_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**fields)  # type: ignore[arg-type]


PORT_METHODS = sorted(name for name, value in vars(HomeGraph).items() if inspect.isfunction(value) and name[0] != "_")


def test_the_port_has_the_calls_the_backend_makes() -> None:
    assert PORT_METHODS == ["query", "report_state_and_notification", "request_sync"]


@pytest.mark.parametrize("implementation", [HomeGraphClient, RecordingHomeGraph, ScriptedHomeGraph])
@pytest.mark.parametrize("method", PORT_METHODS)
def test_the_client_and_every_fake_take_each_call_as_the_port_defines_it(implementation: type, method: str) -> None:
    """Same parameters (name, kind, default) as the port's; an implementation may add optional ones of its own."""
    port = list(inspect.signature(getattr(HomeGraph, method)).parameters.values())
    implemented = inspect.signature(getattr(implementation, method)).parameters
    for parameter in port:
        assert parameter.name in implemented, f"{implementation.__name__}.{method} lacks {parameter.name}"
        theirs = implemented[parameter.name]
        assert (theirs.kind, theirs.default) == (parameter.kind, parameter.default)
    extra = [p for name, p in implemented.items() if name not in {q.name for q in port}]
    assert all(p.default is not inspect.Parameter.empty for p in extra)


def test_a_report_that_json_cannot_carry_is_refused_before_it_is_sent() -> None:
    import pytest

    from functions.core.homegraph import BadRequest
    from functions.platform.homegraph import HomeGraphClient

    client = HomeGraphClient(endpoint="http://127.0.0.1:9")  # nothing listens there: nothing may be sent
    body = {"agentUserId": "u", "payload": {"devices": {"states": {"lamp": {"brightness": float("inf")}}}}}
    with pytest.raises(BadRequest, match="inf is not a JSON number"):
        client.report_state_and_notification(body)
