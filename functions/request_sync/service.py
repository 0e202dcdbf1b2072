"""Request Sync for device changes, coalesced per user across any number of function instances.

Every write to a device document fires one event, so a bulk import of 100 devices fires 100 and a script that
renames 50 devices fires 50. Google needs one SYNC after the last of them, not one per write. The plan, per user:

* Leading edge: the first change after a quiet period is synced at once, so a lone rename reaches Google
  without delay.
* Trailing edge: changes that come while a call is due or in flight are only noted. The invocation holding
  the user's lease (the "owner") waits until `window_s` after its previous call, then issues one call for all
  of them, and goes on like that while changes keep coming.
* Coverage: a change is covered once a requestSync was issued after the change was committed. The ledger keeps
  the commit time of the write that issued each call (the store's clock, the clock of the changes' own
  commit times), so "issued after" is exact; Google's SYNC follows the call and reads every earlier commit.
  A user's last change is therefore always followed by a call issued after it: nothing is left unsynced.

The state lives in a ledger document per user and changes only by compare-and-set writes (see SyncLedger), so
instances agree; pure transitions below compute every step and are what the unit tests exercise.

Window and trade-off (REQUEST_SYNC_WINDOW_S, default 5 s). A burst shorter than the window costs at most two
calls (leading and trailing), a longer one about one more per window; an isolated change costs one call and no
delay; the last change of a burst waits at most one window (plus the call) for its covering call. A longer
window saves calls on long bursts but delays the end of every burst; a shorter one syncs faster but lets long
bursts cost more. Five seconds swallows a bulk import or a renaming script whole, while Google's SYNC after a
user's edit still arrives within seconds. The owner sleeps through the window inside its invocation: that costs
a few seconds of instance time per burst, and needs no scheduler; the function's timeout must exceed
REQUEST_SYNC_OWNER_BUDGET_S (default 120 s), after which the owner hands over by failing its invocation.

Failure handling. An owner that dies loses its lease when the lease expires; the next change, or Eventarc's
redelivery of the owner's failed event, takes over the pending changes. A redelivered event whose change is
covered does nothing; one that arrives while its change is pending joins the owner; so redelivery never causes
an extra call. 400 and 403 are given up (logged; the changes they covered stay unsynced until the next change);
404 marks the user unlinked and drops their pending changes; transient errors (after the client's retries) fail
the invocation so Eventarc redelivers it. Events older than REQUEST_SYNC_MAX_EVENT_AGE_S (default 1 h) are dropped
with a log line, so redelivery cannot go on for ever (a change that old is then synced with the user's next one).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from functions.core.homegraph import BadRequest, Forbidden, HomeGraph, HomeGraphError, NotFound, Transient

log = logging.getLogger(__name__)

# Written instead of a time: the store puts the commit time of the write there.
COMMIT_TIME = -1

# Plans
COVERED = "covered"  # the change was synced already (or given up): nothing to do
NOT_LINKED = "not_linked"  # the user is not linked: Google gets nothing
JOINED = "joined"  # another invocation owns the user's next call; the change is noted for it
OWN = "own"  # this invocation owns the user's next call, due at `at_ms`
WAIT = "wait"  # the owner must wait until `at_ms`
ISSUE = "issue"  # the owner calls requestSync now
CONTINUE = "continue"  # more changes came in: the owner calls again at `at_ms`
DONE = "done"  # the owner is done, nothing pending
LOST = "lost"  # the lease went to another invocation (this one was too slow); it carries on
DEFER = "defer"  # a transient failure: fail the invocation so that Eventarc redelivers it

# Call outcomes
OK = "ok"
BAD_REQUEST = "bad_request"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
TRANSIENT = "transient"
UNLINKED = "unlinked"

LEASE_SLACK_MS = 10_000


@dataclass(frozen=True)
class Settings:
    window_s: float = 5.0
    owner_budget_s: float = 120.0
    max_event_age_s: float = 3600.0
    call_budget_s: float = 45.0  # the longest one requestSync with its retries can take (RetryPolicy.worst_case_s)

    @property
    def window_ms(self) -> int:
        return int(self.window_s * 1000)

    @property
    def lease_ms(self) -> int:
        """How long past its due time an owner keeps the lease without renewing it."""
        return int(self.call_budget_s * 1000) + LEASE_SLACK_MS


@dataclass(frozen=True)
class Ledger:
    """One user's coalescing state. Times ending in _us are store commit times; _ms ones are instance clocks."""

    latest_change_us: int = 0  # commit time of the newest change seen
    handled_before_us: int = 0  # every change committed before this is synced (or given up)
    issued_at_us: int = 0  # commit time of the write that issued the last call
    issued_local_ms: int = 0  # the issuer's clock then (for the window)
    issued_by: str | None = None
    calls: int = 0
    lease_owner: str | None = None
    lease_until_ms: int = 0
    last_outcome: str | None = None

    @property
    def pending(self) -> bool:
        return self.latest_change_us > 0 and self.latest_change_us >= self.handled_before_us

    def lease_live(self, now_ms: int) -> bool:
        return self.lease_owner is not None and self.lease_until_ms > now_ms


@dataclass(frozen=True)
class Plan:
    action: str
    at_ms: int = 0
    unlink: bool = False  # the store marks the user unlinked too


def due_ms(ledger: Ledger, now_ms: int, settings: Settings) -> int:
    """When the next call may go: now, or a window after the previous call."""
    if not ledger.issued_local_ms:
        return now_ms
    return max(now_ms, ledger.issued_local_ms + settings.window_ms)


def _lease(ledger: Ledger, owner: str, until_ms: int) -> Ledger:
    return replace(ledger, lease_owner=owner, lease_until_ms=until_ms)


def _release(ledger: Ledger) -> Ledger:
    return replace(ledger, lease_owner=None, lease_until_ms=0)


def on_change(
    ledger: Ledger, *, linked: bool, change_us: int, owner: str, now_ms: int, settings: Settings
) -> tuple[Ledger | None, Plan]:
    """A device change committed at `change_us` arrives. Returns the ledger to write (None: no write) and the plan."""
    if not linked:
        return None, Plan(NOT_LINKED)
    live = ledger.lease_live(now_ms)
    if change_us < ledger.handled_before_us:
        if ledger.pending and not live:
            # Later changes were left without an owner (it died or handed over): this invocation takes them.
            due = due_ms(ledger, now_ms, settings)
            return _lease(ledger, owner, due + settings.lease_ms), Plan(OWN, due)
        return None, Plan(COVERED)
    noted = replace(ledger, latest_change_us=max(ledger.latest_change_us, change_us))
    if live:
        return (noted if noted != ledger else None), Plan(JOINED)
    due = due_ms(noted, now_ms, settings)
    return _lease(noted, owner, due + settings.lease_ms), Plan(OWN, due)


def on_wake(ledger: Ledger, *, linked: bool, owner: str, now_ms: int, settings: Settings) -> tuple[Ledger | None, Plan]:
    """The owner's call is due: issue it (recording the commit time), wait longer, or stop."""
    if ledger.lease_owner != owner:
        return None, Plan(LOST)
    if not linked:
        dropped = replace(
            ledger, handled_before_us=max(ledger.handled_before_us, ledger.latest_change_us + 1), last_outcome=UNLINKED
        )
        return _release(dropped), Plan(DONE)
    if not ledger.pending:
        return _release(ledger), Plan(DONE)
    due = due_ms(ledger, now_ms, settings)
    if due > now_ms:
        return _lease(ledger, owner, due + settings.lease_ms), Plan(WAIT, due)
    issuing = replace(
        ledger,
        issued_at_us=COMMIT_TIME,
        issued_local_ms=now_ms,
        issued_by=owner,
        calls=ledger.calls + 1,
        lease_until_ms=now_ms + settings.lease_ms,
    )
    return issuing, Plan(ISSUE)


def on_result(
    ledger: Ledger, *, owner: str, issued_at_us: int, outcome: str, now_ms: int, settings: Settings
) -> tuple[Ledger | None, Plan]:
    """The call issued at `issued_at_us` (0 if unknown) ended with `outcome`; what the owner does next."""
    handled = ledger.handled_before_us
    if outcome in (OK, BAD_REQUEST, FORBIDDEN):
        handled = max(handled, issued_at_us)
    elif outcome == NOT_FOUND:
        handled = max(handled, issued_at_us, ledger.latest_change_us + 1)
    ours = ledger.lease_owner == owner
    updated = replace(ledger, handled_before_us=handled, last_outcome=outcome)
    if ours and ledger.issued_by == owner and issued_at_us:
        updated = replace(updated, issued_at_us=issued_at_us)  # the exact commit time, as the store reported it
    if outcome == TRANSIENT:
        return (_release(updated) if ours else updated), Plan(DEFER)
    if outcome == NOT_FOUND:
        return (_release(updated) if ours else updated), Plan(DONE, unlink=True)
    if not ours:
        return updated, Plan(LOST)
    if outcome == OK and updated.pending:
        due = due_ms(updated, now_ms, settings)
        return _lease(updated, owner, due + settings.lease_ms), Plan(CONTINUE, due)
    return _release(updated), Plan(DONE)


def on_hand_over(ledger: Ledger, *, owner: str) -> tuple[Ledger | None, Plan]:
    """The owner stops before its changes are covered; whoever comes next takes them over."""
    if ledger.lease_owner != owner:
        return None, Plan(LOST)
    return _release(ledger), Plan(DEFER)


Step = Callable[[Ledger, bool], tuple[Ledger | None, Plan]]


class SyncLedger(Protocol):
    def transact(self, agent_user_id: str, step: Step) -> tuple[Plan, int]:
        """Runs `step(ledger, linked)` on the user's ledger and link state and writes the ledger it returns, only if
        the ledger did not change in between (else it runs the step again on what is there now). COMMIT_TIME fields
        become the write's commit time; `Plan.unlink` marks the user unlinked. Returns the plan and the commit time
        written as issued_at_us (0 if none)."""
        ...


class SyncDeferred(Exception):
    """The changes are not synced yet: the invocation must fail so that Eventarc delivers it again."""


@dataclass(frozen=True)
class Result:
    plan: str
    calls: int = 0
    outcome: str | None = None


def is_too_old(event_time_ms: int, now_ms: int, settings: Settings) -> bool:
    return now_ms - event_time_ms > settings.max_event_age_s * 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


class RequestSyncService:
    def __init__(
        self,
        ledger: SyncLedger,
        homegraph: HomeGraph,
        settings: Settings,
        *,
        clock_ms: Callable[[], int] = _now_ms,
        sleep: Callable[[float], None] = time.sleep,
        nonce: Callable[[], str] = lambda: secrets.token_hex(4),
    ) -> None:
        self._ledger = ledger
        self._homegraph = homegraph
        self._settings = settings
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._nonce = nonce

    @property
    def settings(self) -> Settings:
        return self._settings

    def on_device_change(self, agent_user_id: str, change_us: int, event_id: str) -> Result:
        """Handles one device change event; raises SyncDeferred when the invocation must be retried."""
        settings = self._settings
        owner = f"{event_id}#{self._nonce()}"  # unique per invocation: a redelivery is a different invocation
        context = {"agentUserId": agent_user_id, "eventId": event_id}
        plan, _ = self._ledger.transact(
            agent_user_id,
            lambda ledger, linked: on_change(
                ledger, linked=linked, change_us=change_us, owner=owner, now_ms=self._clock_ms(), settings=settings
            ),
        )
        if plan.action != OWN:
            log.info(f"request sync: {plan.action}", extra={**context, "plan": plan.action})
            return Result(plan.action)

        started_ms = self._clock_ms()
        at_ms = plan.at_ms
        calls = 0
        outcome: str | None = None
        while True:
            if at_ms - started_ms > settings.owner_budget_s * 1000:
                self._ledger.transact(agent_user_id, lambda ledger, _linked: on_hand_over(ledger, owner=owner))
                log.warning("request sync: coalescing budget spent; handing over", extra={**context, "calls": calls})
                raise SyncDeferred("coalescing budget spent with changes pending; the redelivery takes over")
            wait_ms = at_ms - self._clock_ms()
            if wait_ms > 0:
                self._sleep(wait_ms / 1000)
            plan, issued_at_us = self._ledger.transact(
                agent_user_id,
                lambda ledger, linked: on_wake(
                    ledger, linked=linked, owner=owner, now_ms=self._clock_ms(), settings=settings
                ),
            )
            if plan.action == WAIT:
                at_ms = plan.at_ms
                continue
            if plan.action != ISSUE:
                log.info(f"request sync: {plan.action}", extra={**context, "plan": plan.action, "calls": calls})
                return Result(plan.action, calls, outcome)
            outcome = self._call(agent_user_id, context)
            calls += 1
            plan, _ = self._ledger.transact(agent_user_id, self._result_step(owner, issued_at_us, outcome))
            if plan.action == DEFER:
                raise SyncDeferred("requestSync failed transiently; the redelivery retries it")
            if plan.action == CONTINUE:
                at_ms = plan.at_ms
                continue
            log.info("request sync: done", extra={**context, "plan": plan.action, "calls": calls, "outcome": outcome})
            return Result(plan.action, calls, outcome)

    def _result_step(self, owner: str, issued_at_us: int, outcome: str) -> Step:
        def step(ledger: Ledger, _linked: bool) -> tuple[Ledger | None, Plan]:
            return on_result(
                ledger,
                owner=owner,
                issued_at_us=issued_at_us,
                outcome=outcome,
                now_ms=self._clock_ms(),
                settings=self._settings,
            )

        return step

    def _call(self, agent_user_id: str, context: dict[str, str]) -> str:
        try:
            ok = self._homegraph.request_sync(agent_user_id)
        except BadRequest as error:
            log.error(
                "requestSync refused as malformed (400): a bug of ours; not retried",
                extra={**context, **_details(error)},
            )
            return BAD_REQUEST
        except Forbidden as error:
            log.error(
                "requestSync forbidden: check the service account's HomeGraph permission and the Action's linking; "
                "not retried",
                extra={**context, **_details(error)},
            )
            return FORBIDDEN
        except NotFound as error:
            log.warning(
                "requestSync: Google does not know the user (404); marking them unlinked, no further calls",
                extra={**context, **_details(error)},
            )
            return NOT_FOUND
        except Transient as error:
            log.warning("requestSync failed transiently after retries", extra={**context, **_details(error)})
            return TRANSIENT
        log.info("requestSync sent", extra={**context, "attempts": ok.attempts})
        return OK


def _details(error: HomeGraphError) -> dict[str, object]:
    return {
        "status": error.status,
        "statusName": error.status_name,
        "reason": error.reason,
        "body": dict(error.request_body or {}),
        "attempts": error.attempts,
    }
