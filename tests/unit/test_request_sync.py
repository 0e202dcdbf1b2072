"""Request Sync coalescing: the pure transitions, and the service under simulated time and concurrency.

The simulation plays Eventarc: each device write commits at a time and its event arrives a little later. While
an owner sleeps through its window, the events due in that time are delivered (nested), which is how concurrent
invocations interleave with it. A failed invocation is delivered again later, as Eventarc does.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.core.homegraph import BadRequest, Forbidden, HomeGraphError, NotFound, Ok, Transient
from functions.request_sync.service import (
    BAD_REQUEST,
    COMMIT_TIME,
    CONTINUE,
    COVERED,
    DEFER,
    DONE,
    FORBIDDEN,
    ISSUE,
    JOINED,
    LOST,
    NOT_FOUND,
    NOT_LINKED,
    OK,
    OWN,
    TRANSIENT,
    WAIT,
    Ledger,
    Plan,
    RequestSyncService,
    Settings,
    SyncDeferred,
    is_too_old,
    on_change,
    on_hand_over,
    on_result,
    on_wake,
)
from tests.fakes.memory_sync import MemorySyncLedger, ScriptedHomeGraph

SETTINGS = Settings(window_s=5.0, owner_budget_s=120.0, max_event_age_s=3600.0, call_budget_s=20.0)
USER = "alice"


# The transitions


def test_a_first_change_takes_the_lease_and_is_due_at_once() -> None:
    written, plan = on_change(Ledger(), linked=True, change_us=100, owner="e1#a", now_ms=5_000, settings=SETTINGS)
    assert plan == Plan(OWN, 5_000)
    assert written == Ledger(latest_change_us=100, lease_owner="e1#a", lease_until_ms=5_000 + SETTINGS.lease_ms)


def test_a_change_while_the_lease_is_held_is_noted_for_the_owner() -> None:
    held = Ledger(latest_change_us=100, lease_owner="e1#a", lease_until_ms=60_000)
    written, plan = on_change(held, linked=True, change_us=200, owner="e2#b", now_ms=5_000, settings=SETTINGS)
    assert plan == Plan(JOINED)
    assert written == Ledger(latest_change_us=200, lease_owner="e1#a", lease_until_ms=60_000)
    # nothing newer to note: no write at all
    assert on_change(held, linked=True, change_us=50, owner="e3#c", now_ms=5_000, settings=SETTINGS) == (
        None,
        Plan(JOINED),
    )


def test_a_covered_change_does_nothing() -> None:
    synced = Ledger(latest_change_us=100, handled_before_us=150, issued_at_us=150, issued_local_ms=4_000)
    assert on_change(synced, linked=True, change_us=100, owner="e1#z", now_ms=5_000, settings=SETTINGS) == (
        None,
        Plan(COVERED),
    )


def test_an_unlinked_user_gets_nothing() -> None:
    assert on_change(Ledger(), linked=False, change_us=100, owner="e1#a", now_ms=0, settings=SETTINGS) == (
        None,
        Plan(NOT_LINKED),
    )


def test_the_window_delays_the_next_call() -> None:
    recent = Ledger(latest_change_us=100, handled_before_us=90, issued_at_us=90, issued_local_ms=10_000)
    written, plan = on_change(recent, linked=True, change_us=300, owner="e4#d", now_ms=12_000, settings=SETTINGS)
    assert plan == Plan(OWN, 15_000)
    assert written is not None
    assert written.lease_until_ms == 15_000 + SETTINGS.lease_ms


def test_pending_changes_without_an_owner_are_taken_over_even_by_a_covered_event() -> None:
    orphaned = Ledger(latest_change_us=500, handled_before_us=150, issued_local_ms=1_000, lease_owner="dead#x")
    written, plan = on_change(orphaned, linked=True, change_us=100, owner="e1#retry", now_ms=90_000, settings=SETTINGS)
    assert plan == Plan(OWN, 90_000)
    assert written is not None
    assert written.lease_owner == "e1#retry"


def test_waking_issues_records_the_commit_time_and_renews_the_lease() -> None:
    owned = Ledger(latest_change_us=100, lease_owner="o", lease_until_ms=30_000, calls=3)
    written, plan = on_wake(owned, linked=True, owner="o", now_ms=20_000, settings=SETTINGS)
    assert plan == Plan(ISSUE)
    assert written == Ledger(
        latest_change_us=100,
        issued_at_us=COMMIT_TIME,
        issued_local_ms=20_000,
        issued_by="o",
        calls=4,
        lease_owner="o",
        lease_until_ms=20_000 + SETTINGS.lease_ms,
    )


def test_waking_early_waits_and_waking_without_the_lease_stops() -> None:
    owned = Ledger(latest_change_us=100, issued_local_ms=18_000, lease_owner="o", lease_until_ms=1)
    assert on_wake(owned, linked=True, owner="o", now_ms=20_000, settings=SETTINGS)[1] == Plan(WAIT, 23_000)
    assert on_wake(owned, linked=True, owner="other", now_ms=30_000, settings=SETTINGS) == (None, Plan(LOST))


def test_waking_with_nothing_pending_releases_and_unlinked_drops_everything() -> None:
    done = Ledger(latest_change_us=100, handled_before_us=101, lease_owner="o", lease_until_ms=50_000)
    written, plan = on_wake(done, linked=True, owner="o", now_ms=0, settings=SETTINGS)
    assert plan == Plan(DONE)
    assert written is not None
    assert written.lease_owner is None
    pending = Ledger(latest_change_us=100, lease_owner="o", lease_until_ms=50_000)
    written, plan = on_wake(pending, linked=False, owner="o", now_ms=0, settings=SETTINGS)
    assert plan == Plan(DONE)
    assert written is not None
    assert not written.pending
    assert written.lease_owner is None


@pytest.mark.parametrize("outcome", [OK, BAD_REQUEST, FORBIDDEN])
def test_a_finished_call_handles_what_was_committed_before_it(outcome: str) -> None:
    issuing = Ledger(latest_change_us=100, issued_at_us=149, issued_by="o", lease_owner="o", lease_until_ms=50_000)
    written, plan = on_result(issuing, owner="o", issued_at_us=150, outcome=outcome, now_ms=1, settings=SETTINGS)
    assert plan == Plan(DONE)
    assert written is not None
    assert (written.handled_before_us, written.last_outcome, written.lease_owner) == (150, outcome, None)
    assert written.issued_at_us == 150  # the exact commit time replaces the stored placeholder


def test_changes_after_the_call_make_the_owner_continue_after_the_window() -> None:
    issuing = Ledger(latest_change_us=200, issued_at_us=150, issued_local_ms=1_000, lease_owner="o", lease_until_ms=9)
    written, plan = on_result(issuing, owner="o", issued_at_us=150, outcome=OK, now_ms=1_200, settings=SETTINGS)
    assert plan == Plan(CONTINUE, 6_000)
    assert written is not None
    assert written.lease_owner == "o"


def test_after_a_refused_call_later_changes_wait_for_the_next_event() -> None:
    issuing = Ledger(latest_change_us=200, issued_at_us=150, lease_owner="o", lease_until_ms=9)
    written, plan = on_result(issuing, owner="o", issued_at_us=150, outcome=FORBIDDEN, now_ms=0, settings=SETTINGS)
    assert plan == Plan(DONE)
    assert written is not None
    assert written.pending
    assert written.lease_owner is None


def test_not_found_unlinks_and_drops_everything_pending() -> None:
    issuing = Ledger(latest_change_us=200, issued_at_us=150, lease_owner="o", lease_until_ms=9)
    written, plan = on_result(issuing, owner="o", issued_at_us=150, outcome=NOT_FOUND, now_ms=0, settings=SETTINGS)
    assert plan == Plan(DONE, unlink=True)
    assert written is not None
    assert not written.pending


def test_a_transient_failure_handles_nothing_and_defers() -> None:
    issuing = Ledger(latest_change_us=100, issued_at_us=150, lease_owner="o", lease_until_ms=9)
    written, plan = on_result(issuing, owner="o", issued_at_us=150, outcome=TRANSIENT, now_ms=0, settings=SETTINGS)
    assert plan == Plan(DEFER)
    assert written is not None
    assert (written.handled_before_us, written.lease_owner) == (0, None)


def test_a_slow_owner_that_lost_its_lease_still_credits_its_call() -> None:
    taken = Ledger(latest_change_us=100, issued_at_us=170, lease_owner="new", lease_until_ms=9)
    written, plan = on_result(taken, owner="old", issued_at_us=150, outcome=OK, now_ms=0, settings=SETTINGS)
    assert plan == Plan(LOST)
    assert written is not None
    assert (written.handled_before_us, written.lease_owner) == (150, "new")


def test_hand_over_releases_only_its_own_lease() -> None:
    assert on_hand_over(Ledger(lease_owner="o", lease_until_ms=5), owner="o") == (Ledger(), Plan(DEFER))
    assert on_hand_over(Ledger(lease_owner="x", lease_until_ms=5), owner="o") == (None, Plan(LOST))


def test_event_age() -> None:
    assert not is_too_old(0, 3_600_000, SETTINGS)
    assert is_too_old(0, 3_600_001, SETTINGS)


# The service under simulated time


@dataclass(order=True)
class Delivery:
    arrival_ms: float
    order: int
    change_us: int = field(compare=False)
    event_id: str = field(compare=False)
    attempt: int = field(compare=False, default=1)


class SlowHomeGraph(ScriptedHomeGraph):
    """A call that takes `call_ms` of simulated time, during which other events are delivered."""

    def __init__(self, sim: Sim, call_ms: float, script: dict[int, HomeGraphError] | None) -> None:
        super().__init__(sim.ledger.commit_time_us, script)
        self.sim = sim
        self.call_ms = call_ms

    def request_sync(self, agent_user_id: str) -> Ok:
        try:
            return super().request_sync(agent_user_id)
        finally:
            if self.call_ms:
                self.sim.sleep(self.call_ms / 1000)


class Sim:
    """Writes, Eventarc deliveries (with redelivery of failed invocations) and a clock, all simulated."""

    def __init__(
        self,
        settings: Settings = SETTINGS,
        linked: bool = True,
        script: dict[int, HomeGraphError] | None = None,
        redelivery_ms: float = 10_000,
        call_ms: float = 0.0,
    ) -> None:
        self.now_ms = 1_000_000.0
        self.ledger = MemorySyncLedger(commit_clock_us=lambda: int(self.now_ms * 1000))
        self.ledger.linked[USER] = linked
        self.homegraph = SlowHomeGraph(self, call_ms, script)
        self.queue: list[Delivery] = []
        self.order = itertools.count()
        self.results: list[tuple[str, str]] = []  # (event id, plan or "deferred")
        self.changes: list[int] = []
        self.redelivery_ms = redelivery_ms
        nonces = (f"n{i}" for i in itertools.count())
        self.service = RequestSyncService(
            self.ledger,
            self.homegraph,
            settings,
            clock_ms=lambda: int(self.now_ms),
            sleep=self.sleep,
            nonce=lambda: next(nonces),
        )

    def write(self, at_ms: float, delay_ms: float = 20.0, event_id: str | None = None) -> str:
        """A device write committing at `at_ms` whose event arrives `delay_ms` later."""
        change_us = int(at_ms * 1000) + len(self.changes)  # distinct commit times
        self.changes.append(change_us)
        name = event_id or f"e{len(self.changes)}"
        heapq.heappush(self.queue, Delivery(at_ms + delay_ms, next(self.order), change_us, name))
        return name

    def redeliver(self, event_id: str, at_ms: float) -> None:
        change_us = self.changes[int(event_id[1:]) - 1]
        heapq.heappush(self.queue, Delivery(at_ms, next(self.order), change_us, event_id))

    def deliver(self, delivery: Delivery) -> None:
        self.now_ms = max(self.now_ms, delivery.arrival_ms)
        try:
            result = self.service.on_device_change(USER, delivery.change_us, delivery.event_id)
            self.results.append((delivery.event_id, result.plan))
        except SyncDeferred:
            self.results.append((delivery.event_id, "deferred"))
            heapq.heappush(
                self.queue,
                Delivery(
                    self.now_ms + self.redelivery_ms,
                    next(self.order),
                    delivery.change_us,
                    delivery.event_id,
                    delivery.attempt + 1,
                ),
            )

    def sleep(self, seconds: float) -> None:
        until = self.now_ms + seconds * 1000
        while self.queue and self.queue[0].arrival_ms <= until:
            self.deliver(heapq.heappop(self.queue))
        self.now_ms = max(self.now_ms, until)

    def run(self, until_ms: float = math.inf) -> None:
        while self.queue and self.queue[0].arrival_ms <= until_ms:
            self.deliver(heapq.heappop(self.queue))

    @property
    def call_times_us(self) -> list[int]:
        return [when for _, when in self.homegraph.calls]

    def everything_covered(self) -> bool:
        ledger = self.ledger.ledgers[USER]
        return ledger.handled_before_us > max(self.changes) and ledger.lease_owner is None


def test_a_lone_change_is_synced_at_once() -> None:
    sim = Sim()
    sim.write(1_000_000)
    sim.run()
    assert len(sim.homegraph.calls) == 1
    assert sim.call_times_us[0] <= (1_000_000 + 20) * 1000 + 1
    assert sim.results == [("e1", DONE)]
    assert sim.everything_covered()


def test_a_bulk_import_of_100_costs_two_calls() -> None:
    sim = Sim()
    for index in range(100):
        sim.write(1_000_000 + index * 5)  # 100 writes in half a second
    sim.run()
    assert len(sim.homegraph.calls) == 2
    assert sim.call_times_us[-1] > max(sim.changes)
    assert sim.everything_covered()
    plans = [plan for _, plan in sim.results]
    assert plans.count(DONE) == 2  # the leading call's owner, and the trailing one's
    assert plans.count(JOINED) + plans.count(COVERED) == 98


def test_fifty_renames_spread_over_three_seconds_cost_two_calls() -> None:
    sim = Sim()
    for index in range(50):
        sim.write(1_000_000 + index * 60)
    sim.run()
    assert len(sim.homegraph.calls) == 2
    assert sim.everything_covered()


def test_a_burst_longer_than_the_window_costs_one_call_per_window() -> None:
    sim = Sim()
    for index in range(120):
        sim.write(1_000_000 + index * 100)  # 12 s of changes
    sim.run()
    assert len(sim.homegraph.calls) == 1 + math.ceil(11_900 / 5_000)
    gaps = [b - a for a, b in itertools.pairwise(sim.call_times_us)]
    assert all(gap >= 5_000_000 for gap in gaps)
    assert sim.everything_covered()


def test_a_redelivered_event_causes_no_extra_call() -> None:
    sim = Sim()
    sim.write(1_000_000)
    sim.write(1_000_100)
    sim.redeliver("e2", 1_002_000)  # while the owner waits: joins
    sim.redeliver("e1", 1_020_000)  # long after: covered
    sim.redeliver("e2", 1_020_000)
    sim.run()
    assert len(sim.homegraph.calls) == 2
    # e1's call goes at once; e2 then owns the trailing call and its redelivery joins it
    assert [plan for _, plan in sim.results] == [DONE, JOINED, DONE, COVERED, COVERED]


def test_an_unlinked_user_gets_nothing_even_when_unlinked_mid_burst() -> None:
    sim = Sim(linked=False)
    sim.write(1_000_000)
    sim.run()
    assert sim.homegraph.calls == []
    assert sim.results == [("e1", NOT_LINKED)]

    sim = Sim()
    sim.write(1_000_000)
    sim.write(1_000_500)
    sim.run(until_ms=1_000_100)  # the leading call is made; the owner is waiting for its window
    sim.ledger.linked[USER] = False  # DISCONNECT
    sim.run()
    assert len(sim.homegraph.calls) == 1


def test_not_found_marks_the_user_unlinked_and_stops_calls() -> None:
    sim = Sim(script={0: NotFound("requestSync", 404, "Requested entity was not found.")})
    sim.write(1_000_000)
    sim.write(1_000_100)
    sim.run()
    assert len(sim.homegraph.calls) == 1
    assert sim.ledger.unlinked == [USER]
    sim.write(1_030_000)
    sim.run()
    assert len(sim.homegraph.calls) == 1
    assert sim.results[-1][1] == NOT_LINKED
    # linking again (SYNC or a new token) makes changes count again
    sim.ledger.linked[USER] = True
    sim.write(1_040_000)
    sim.run()
    assert len(sim.homegraph.calls) == 2


@pytest.mark.parametrize("error", [BadRequest, Forbidden])
def test_refused_calls_are_not_retried(error: type[HomeGraphError]) -> None:
    sim = Sim(script={0: error("requestSync", 400, "bad")})
    sim.write(1_000_000)
    sim.run()
    assert len(sim.homegraph.calls) == 1
    assert sim.results == [("e1", DONE)]
    assert sim.ledger.ledgers[USER].last_outcome in (BAD_REQUEST, FORBIDDEN)
    sim.write(1_050_000)  # the next change is tried again
    sim.run()
    assert len(sim.homegraph.calls) == 2


def test_a_transient_failure_fails_the_invocation_and_the_redelivery_syncs() -> None:
    sim = Sim(script={0: Transient("requestSync", 503, "unavailable")})
    sim.write(1_000_000)
    sim.run()
    assert [plan for _, plan in sim.results] == ["deferred", DONE]
    assert len(sim.homegraph.calls) == 2
    assert sim.everything_covered()
    assert sim.ledger.ledgers[USER].last_outcome == OK


def test_changes_joined_to_a_failing_owner_are_synced_by_its_redelivery() -> None:
    sim = Sim(script={1: Transient("requestSync", 503, "unavailable")})
    for index in range(10):
        sim.write(1_000_000 + index * 100)
    sim.run()
    assert len(sim.homegraph.calls) == 3  # leading, failed trailing, trailing by the redelivered owner
    assert sim.everything_covered()


def test_an_owner_that_dies_is_replaced_once_its_lease_expires() -> None:
    sim = Sim()
    first = sim.write(1_000_000)
    # the owner takes the lease and dies before calling (its instance is gone; its event is not redelivered)
    sim.ledger.transact(
        USER,
        lambda ledger, linked: on_change(
            ledger, linked=linked, change_us=sim.changes[0], owner=f"{first}#dead", now_ms=1_000_020, settings=SETTINGS
        ),
    )
    sim.queue.clear()
    sim.write(1_001_000)  # joins the dead owner
    sim.write(1_000_000 + SETTINGS.lease_ms + 1_000)  # arrives after the lease expired: takes over
    sim.run()
    assert [plan for _, plan in sim.results] == [JOINED, DONE]
    assert len(sim.homegraph.calls) == 1
    assert sim.everything_covered()


def test_an_owner_out_of_budget_hands_over_to_the_redelivery() -> None:
    settings = Settings(window_s=5.0, owner_budget_s=12.0, call_budget_s=20.0)
    sim = Sim(settings=settings, redelivery_ms=1_000, call_ms=300)
    for index in range(300):
        sim.write(1_000_000 + index * 100)  # 30 s of changes
    sim.run()
    assert "deferred" in [plan for _, plan in sim.results]
    assert sim.everything_covered()
    gaps = [b - a for a, b in itertools.pairwise(sim.call_times_us)]
    assert all(gap >= 5_000_000 for gap in gaps)


@settings(max_examples=150, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=60),
    delays=st.lists(st.integers(min_value=1, max_value=3_000), min_size=60, max_size=60),
    window_s=st.sampled_from([1.0, 2.5, 5.0]),
    call_ms=st.sampled_from([0, 50, 400]),
)
def test_any_schedule_is_covered_with_calls_spaced_a_window_apart(
    offsets: list[int], delays: list[int], window_s: float, call_ms: int
) -> None:
    sim = Sim(settings=Settings(window_s=window_s, owner_budget_s=600.0, call_budget_s=20.0), call_ms=call_ms)
    for index, offset in enumerate(sorted(offsets)):
        sim.write(1_000_000 + offset, delay_ms=delays[index])
    sim.run()
    assert sim.everything_covered()
    assert sim.call_times_us[-1] > max(sim.changes)
    gaps = [b - a for a, b in itertools.pairwise(sim.call_times_us)]
    assert all(gap >= window_s * 1_000_000 for gap in gaps)
    arrivals = [1_000_000 + o + delays[i] for i, o in enumerate(sorted(offsets))]
    span_ms = max(arrivals) - min(arrivals)
    assert len(sim.homegraph.calls) <= 2 + span_ms // (window_s * 1000)
