"""The Report State pipeline: device states, proactive notifications and follow-up responses to HomeGraph.

Three ways in, one way out:
  * a state message on the state topic (`Reporter.handle`): a device cloud's new state, announcement or command
    result; the device's Firestore state is updated first (QUERY stays the truth);
  * a write to a device document that did not come from here (`Reporter.device_written`, called by the
    device-document trigger): EXECUTE, a device cloud writing Firestore directly, the operators' CLI;
  * a full report after a SYNC (`Reporter.handle_report_all`), once Google had time to process the SYNC.
Each of them queues an entry for the user (users/{agentUserId}/reportQueue/{entryId}) in the same atomic write
as the change itself, and then makes sure the entry reaches HomeGraph (`Coalescer.ensure_reported`).

Where each part lives (read them in this order):
  * functions.reporting.model: settings, outcomes, what is read and written, the storage port (ReportStore);
  * functions.reporting.apply: applying a change and queueing its entry (retried conditional writes);
  * functions.reporting.lease: coalescing across instances under the user's lease, why nothing is lost;
  * functions.reporting.coordination: the invocations of one instance waiting on one flush;
  * functions.reporting.flusher: one flush of the user's queue, and the HomeGraph error policy;
  * functions.reporting.planning: which calls a flush makes (pure);
  * functions.reporting.timeouts: pending commands nobody completed, given up once a minute;
  * functions.reporting.redaction: what is logged of a request body;
  * functions.reporting.store: the Firestore side; functions.reporting.wiring builds it all.

Messages older than `max_message_age_s` are dropped with a log line, so that redelivery cannot go on for ever.
Users who are not linked (DISCONNECT) get nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from functions.core.device import parse_device
from functions.core.errors import InvalidDevice
from functions.core.homegraph import HomeGraph
from functions.core.ports import DeviceDocument
from functions.core.state_messages import ReportAllRequest, StateMessage
from functions.reporting import planning
from functions.reporting.apply import Applier, report_seq
from functions.reporting.flusher import Flusher
from functions.reporting.lease import Coalescer
from functions.reporting.model import (
    IGNORED,
    NOT_LINKED,
    REPORTED,
    SUPERSEDED,
    TOO_OLD,
    UNCHANGED,
    ReportDeferred,
    ReportStore,
    Settings,
)
from functions.reporting.planning import QueueEntry
from functions.reporting.runtime import Runtime, random_id, wall_clock_ms
from functions.reporting.timeouts import Timeouts

log = logging.getLogger(__name__)


class Reporter:
    def __init__(
        self,
        store: ReportStore,
        homegraph: Callable[[], HomeGraph],
        settings: Settings | None = None,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = random_id,
    ) -> None:
        # Shared by the parts, so that changing `settings` changes them for all.
        self._rt = Runtime(store, homegraph, settings or Settings(), clock_ms, sleep, monotonic, new_id)
        self._applier = Applier(self._rt)
        self._coalescer = Coalescer(self._rt, Flusher(self._rt))
        self._timeouts = Timeouts(self._rt, self._coalescer)

    @property
    def settings(self) -> Settings:
        return self._rt.settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self._rt.settings = settings

    # Ways in

    def handle(
        self,
        message: StateMessage,
        message_id: str,
        published_ms: int,
        refused: Callable[[str], None] | None = None,
    ) -> str:
        """Applies a state message and reports it; raises InvalidMessage (acknowledge) or ReportDeferred (retry).

        `refused` hears why, when the message is not applied in full (a refused state part, ignored keys, refused
        notifications, too old): the entry point publishes that on the rejection topic. It is called before the
        report, so a redelivery (after a failed report) says it again: the device cloud may hear a reason twice."""
        rt = self._rt
        started = rt.monotonic()
        delivered_after_ms = rt.clock_ms() - published_ms
        fields = {"agentUserId": message.agent_user_id, "deviceId": message.device_id, "messageId": message_id}
        if self._too_old(published_ms, fields):
            if refused is not None:
                refused(f"older than the maximum message age ({rt.settings.max_message_age_s:g} s): dropped")
            return TOO_OLD
        entry_id = planning.stable_id("message", message_id)
        applied = self._applier.apply_message(message, entry_id, fields)
        if applied.refused:
            reason = "; ".join(applied.refused)
            if refused is not None:
                refused(reason)  # which logs it too
            else:
                log.warning("state message not applied in full", extra={**fields, "reason": reason[:1000]})
        outcome = applied.outcome
        finished_applying = rt.monotonic()
        if applied.to_report:
            created = applied.queued.created_ms if applied.queued is not None else rt.clock_ms()
            self._coalescer.ensure_reported(message.agent_user_id, entry_id, created, queued=applied.queued is not None)
            outcome = REPORTED
        timing = {
            "deliveredAfterMs": delivered_after_ms,
            "applyMs": round((finished_applying - started) * 1000),
            "reportMs": round((rt.monotonic() - finished_applying) * 1000),
        }
        # Repeated values (the bulk of a sensor's messages) are logged at DEBUG only.
        log.log(
            logging.DEBUG if outcome == UNCHANGED else logging.INFO,
            "state message handled",
            extra={**fields, "outcome": outcome, **timing},
        )
        return outcome

    def device_written(
        self,
        agent_user_id: str,
        device_id: str,
        before: DeviceDocument | None,
        after: DeviceDocument | None,
        event_id: str,
        event_ms: int,
    ) -> str:
        """A device document was written (the trigger's before/after): reports a state or `online` change that
        did not come from this pipeline."""
        fields = {"agentUserId": agent_user_id, "deviceId": device_id, "eventId": event_id}
        if after is None or not _state_changed(before, after):
            return IGNORED
        if report_seq(after) > report_seq(before):
            return IGNORED  # our own write: queued when it was made
        if self._too_old(event_ms, fields):
            return TOO_OLD
        try:
            device = parse_device(device_id, after)
        except InvalidDevice as problem:
            log.error("invalid device document: not reported", extra={**fields, "reason": str(problem)})
            return IGNORED
        entry_id = planning.stable_id("write", event_id)
        applied = self._applier.queue_device_write(agent_user_id, device_id, device, before, entry_id)
        if not applied.to_report:
            return applied.outcome
        self._coalescer.ensure_reported(agent_user_id, entry_id, self._rt.clock_ms(), applied.queued is not None)
        log.info("device change reported", extra=fields)
        return REPORTED

    def handle_report_all(self, request: ReportAllRequest, message_id: str, published_ms: int) -> str:
        """The full report of a user's devices after a SYNC, once Google had time to process it."""
        rt = self._rt
        fields = {"agentUserId": request.agent_user_id, "messageId": message_id}
        if self._too_old(published_ms, fields):
            return TOO_OLD
        due_ms = request.linked_at_ms + int(rt.settings.initial_report_delay_s * 1000)
        wait_s = (due_ms - rt.clock_ms()) / 1000
        if wait_s > 0:
            if wait_s > rt.settings.wait_budget_s:
                raise ReportDeferred("the full report after the SYNC is not due yet")
            rt.sleep(wait_s)
        entry_id = planning.stable_id("message", message_id)
        user = rt.store.user(request.agent_user_id)
        if user is None or not user.linked:
            return NOT_LINKED
        if user.linked_at_ms > request.linked_at_ms:
            log.info("full report superseded by a later SYNC", extra=fields)
            return SUPERSEDED
        queued = False
        if user.full_report_for_ms >= request.linked_at_ms:
            if not rt.store.entry_exists(request.agent_user_id, entry_id):
                return SUPERSEDED  # reported already (this is a redelivery)
        else:
            entry = QueueEntry(entry_id, None, rt.clock_ms(), full=True)
            if not rt.store.queue_full_report(request.agent_user_id, entry, user):
                raise ReportDeferred("the user changed while the full report was queued")
            queued = True
        self._coalescer.ensure_reported(request.agent_user_id, entry_id, rt.clock_ms(), queued)
        log.info("full report after SYNC", extra=fields)
        return REPORTED

    def give_up_overdue(self, message_id: str, published_ms: int) -> str:
        """The minute's sweep (functions.reporting.timeouts): gives up the pending commands nobody completed."""
        if self._too_old(published_ms, {"messageId": message_id}):
            return TOO_OLD
        given_up = self._timeouts.give_up_overdue()
        log.log(logging.INFO if given_up else logging.DEBUG, "overdue commands swept", extra={"givenUp": given_up})
        return REPORTED if given_up else UNCHANGED

    def _too_old(self, published_ms: int, fields: Mapping[str, Any]) -> bool:
        age_s = (self._rt.clock_ms() - published_ms) / 1000
        if age_s > self._rt.settings.max_message_age_s:
            log.warning(
                "message older than the maximum age: dropped",
                extra={**fields, "ageS": round(age_s, 1), "maxAgeS": self._rt.settings.max_message_age_s},
            )
            return True
        return False


def _state_changed(before: DeviceDocument | None, after: DeviceDocument) -> bool:
    if before is None:
        return False  # a new device: the full report after its SYNC covers it
    return bool(
        (before.get("state") or {}) != (after.get("state") or {})
        or before.get("online", True) != after.get("online", True)
    )
