"""Giving up pending commands that nobody completed (PENDING_TIMEOUT_S, default 300 s).

A command that answered PENDING waits for its device cloud's result (a state message with its commandId). A cloud
that never sends it would leave the command pending for ever, and Google waiting for a follow-up. Once a minute,
Cloud Scheduler (infra/scheduler.tf; in the local stack tools/devicecloud.py's tick) publishes a message with the
attribute kind=pending-timeouts on the state topic, and report_state hands it here. Each pending command whose
give-up time has passed (`giveUpAt`: PENDING_TIMEOUT_S after it was issued, and for a command Google gave a
token, 90 s before that token expires: functions.core.commands.give_up_at) is given up in one conditional write:
marked completed, so that a late result sends nothing more, and, when Google holds a token that is still good
and the user is linked, with a FAILURE follow-up (errorCode GIVEN_UP_ERROR_CODE) queued for the user and then
reported like any other entry. Each one is logged (WARNING). A command given up with a follow-up stays in the
sweep's query until its entry has been reported, so a report deferred now is made by the next sweep.

Why a scheduled sweep: it needs no function of its own (the deployed functions stay as they are) and a minute is
precise enough for a timeout of minutes. A Firestore TTL policy deletes within a day, far too late; the user's own
flushes run only when something else happens to the user; a message redelivered until due would count as a
failure at every attempt, and go to the dead-letter topic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from functions.core.commands import GIVEN_UP_ERROR_CODE, PendingCommand
from functions.reporting import planning
from functions.reporting.lease import Coalescer
from functions.reporting.model import UserRecord
from functions.reporting.planning import FOLLOW_UP, Event, QueueEntry
from functions.reporting.runtime import Runtime

log = logging.getLogger(__name__)

# Commands given up by one sweep; more wait for the next one (a minute later).
MAX_PER_SWEEP = 500
# Users whose FAILURE follow-ups one sweep reports at once (each waits for its user's flush).
PARALLEL_USERS = 16


class Timeouts:
    def __init__(self, runtime: Runtime, coalescer: Coalescer) -> None:
        self._rt = runtime
        self._coalescer = coalescer

    def give_up_overdue(self) -> int:
        """Gives up every overdue pending command and reports the FAILURE follow-ups; returns how many."""
        rt = self._rt
        store = rt.store
        now = rt.clock_ms()
        follow_ups: dict[str, list[tuple[str, int]]] = {}  # per user: (queue entry, created at)
        users: dict[str, UserRecord | None] = {}
        given_up = 0
        for pending, version in store.overdue_pending(now, MAX_PER_SWEEP):
            if pending.completed_by is not None:
                # Given up by an earlier sweep whose report was deferred: its follow-up is still queued.
                follow_ups.setdefault(pending.agent_user_id, []).append((pending.completed_by, now))
                continue
            if pending.agent_user_id not in users:
                users[pending.agent_user_id] = store.user(pending.agent_user_id)
            entry = self._failure_entry(pending, users[pending.agent_user_id], now)
            if not store.give_up_pending(pending, version, entry, now):
                continue  # its result came meanwhile
            given_up += 1
            log.warning(
                "pending command given up: its device cloud did not complete it in time",
                extra={
                    "agentUserId": pending.agent_user_id,
                    "deviceId": pending.device_id,
                    "commandId": pending.command_id,
                    "command": pending.command,
                    "backend": pending.backend,
                    "pendingS": round((now - pending.created_ms) / 1000),
                    "followUp": "FAILURE" if entry is not None else "none",
                },
            )
            if entry is not None:
                follow_ups.setdefault(pending.agent_user_id, []).append((entry.entry_id, entry.created_ms))
        if follow_ups:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_USERS, len(follow_ups))) as pool:
                for done in [pool.submit(self._report, user, entries) for user, entries in follow_ups.items()]:
                    # ReportDeferred: the sweep's message comes again, and finds the entries still queued.
                    done.result()
        return given_up

    def _report(self, agent_user_id: str, entries: Sequence[tuple[str, int]]) -> None:
        # The first entry's flush covers them all; the others find theirs gone.
        for entry_id, created_ms in entries:
            self._coalescer.ensure_reported(agent_user_id, entry_id, created_ms, queued=True)

    def _failure_entry(self, pending: PendingCommand, user: UserRecord | None, now: int) -> QueueEntry | None:
        """The FAILURE follow-up Google gets for the command, if it holds a good token and the user is linked."""
        if not pending.token or pending.expires_ms <= now:
            return None
        if user is None or not user.linked:
            return None
        payload = planning.follow_up_notifications(
            pending.command, pending.token, pending.params, {}, GIVEN_UP_ERROR_CODE
        )
        if payload is None:
            return None
        # The id a completion would have used: of the two, Google gets one.
        event_id = planning.stable_id("followup", pending.command_id)
        event = Event(event_id, pending.device_id, FOLLOW_UP, payload, now, expires_ms=pending.expires_ms)
        return QueueEntry(planning.stable_id("timeout", pending.command_id), pending.device_id, now, events=(event,))
