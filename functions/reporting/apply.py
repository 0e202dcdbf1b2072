"""Applying a change: the device's Firestore state and the user's queue entry, written together.

Applying reads everything it needs in one round trip (`ReportStore.read_for_apply`) and writes one atomic write
(`ApplyWrite`) conditional on what it read: the device's new state (with `reportSeq` increased, so that the
device-document trigger knows the write as ours), when the message was observed, the queue entry, the events
recorded as announced, and the pending command its follow-up completes. A write that lost a race fails as a
whole and is read and tried again, up to MAX_APPLY_ATTEMPTS times (then ReportDeferred: redelivered). A message
observed before the last one applied to its device does not change the state, but what it announces (a press, a
command's result) still happened and is announced. See functions.reporting.model for the documents.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.device import Device, parse_device
from functions.core.errors import InvalidDevice
from functions.core.ports import DeviceDocument, StoredDevice
from functions.core.state_messages import InvalidMessage, StateMessage
from functions.reporting import planning
from functions.reporting.model import (
    IGNORED,
    NOT_LINKED,
    REPORT_SEQ,
    REPORTED,
    STALE,
    UNCHANGED,
    ApplyRead,
    ApplyWrite,
    ReportDeferred,
)
from functions.reporting.planning import FOLLOW_UP, NOTIFICATION, Event, QueueEntry
from functions.reporting.runtime import Runtime

log = logging.getLogger(__name__)

MAX_APPLY_ATTEMPTS = 10


@dataclass(frozen=True)
class Applied:
    """How applying a change ended: its outcome, unless an entry of it is queued and must now be reported."""

    outcome: str
    queued: QueueEntry | None = None  # the entry this write queued
    already_queued: bool = False  # the entry was queued before (a redelivery of the same change)
    refused: tuple[str, ...] = ()  # why parts of the message were not applied (for the rejection topic)

    @property
    def to_report(self) -> bool:
        return self.queued is not None or self.already_queued


def report_seq(document: DeviceDocument | StoredDevice | None) -> int:
    """How many state writes of the pipeline the device document has seen (REPORT_SEQ)."""
    if isinstance(document, StoredDevice):
        document = document.document
    value = (document or {}).get(REPORT_SEQ)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Applier:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def apply_message(self, message: StateMessage, entry_id: str, fields: Mapping[str, Any]) -> Applied:
        """Applies a state message to the device and queues what Google must hear of it (entry `entry_id`); the
        parts it refuses are named in `Applied.refused`. Raises InvalidMessage when nothing of the message can be
        applied (no such device: acknowledge) or ReportDeferred (retry)."""
        rt = self._rt
        runcycle_id = planning.stable_id("runcycle", entry_id)
        # A state change announces a finished run once: a redelivered message finds the state already changed.
        event_ids = [message.event_id] if message.event_id else []
        for attempt in range(MAX_APPLY_ATTEMPTS):
            if attempt:
                rt.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))  # noqa: S311 - jitter
            now = rt.clock_ms()
            entry: QueueEntry | None = None
            read = rt.store.read_for_apply(
                message.agent_user_id, message.device_id, entry_id, event_ids, message.command_id
            )
            if read.pending is not None and read.pending.due_ms > now and read.pending.completed_by is None:
                # A virtual device completes no earlier than its configured delay.
                rt.sleep(min((read.pending.due_ms - now) / 1000, rt.settings.wait_budget_s))
                continue
            device = _stored_device(message.device_id, read.device, fields)
            # Its state is outdated, but what it announces (a press, a command's result) still happened.
            stale = message.observed_at_ms < read.observed.observed_at_ms
            if stale:
                log.info("message observed before the last one applied: its state is not applied", extra=fields)
            # A part that is refused is left out, and said why; the rest of the message still counts: a command's
            # result (FAILURE stays FAILURE) and an announcement are delivered whatever the state part held.
            refused: list[str] = []
            after, ignored, problems = planning.state_changes(device, message.states, message.online)
            state_refused = bool(problems)
            if state_refused:
                refused.append("state not applied: " + "; ".join(problems))
                after = device
            if ignored:
                refused.append(f"state keys that no trait of the device defines were ignored: {', '.join(ignored)}")
            if message.notifications:
                problems = planning.notification_problems(device, message.notifications)
                if problems:
                    refused.append("notifications not announced: " + "; ".join(problems))
                    message = dataclasses.replace(message, notifications={})
            changed = not stale and (after.state != device.state or after.online != device.online)
            linked = read.user is not None and read.user.linked
            events: list[Event] = []
            completed: tuple[str, Any, str] | None = None
            if linked:
                events = _message_events(message, device, after if changed else device, read, runcycle_id, now, fields)
                follow_up = _follow_up(message, after, read, entry_id, now, fields)
                if follow_up is not None:
                    events.append(follow_up)
            elif changed or message.notifications or message.command_id:
                log.info("user not linked: the state is stored, Google gets nothing", extra=fields)
            if _completes(message, read):
                # Done, with a follow-up or without one (no token, expired): no longer pending, never given up.
                completed = (str(message.command_id), read.pending_version, entry_id)
            wants_report = changed and device.will_report_state
            if linked and not read.entry_exists and (wants_report or events):
                entry = QueueEntry(entry_id, message.device_id, now, events=tuple(events))
            # A refused state moves nothing forward: a valid report observed earlier is still newer than the device.
            newer = message.observed_at_ms > read.observed.observed_at_ms and not state_refused
            if not (changed or newer or entry or completed):
                outcome = STALE if stale else UNCHANGED
                break
            write = ApplyWrite(
                device_id=message.device_id,
                device_version=read.device.version if read.device else None,
                state=dict(after.state) if changed else None,
                online=after.online if after.online != device.online else None,
                report_seq=report_seq(read.device) + 1,
                observed_version=read.observed.version,
                observed_at_ms=message.observed_at_ms if newer else None,
                entry=entry,
                seen_events=tuple(e.event_id for e in events if e.event_id == message.event_id),
                completed_command=completed,
            )
            if rt.store.commit_apply(message.agent_user_id, write, now):
                outcome = REPORTED if entry else (STALE if stale else UNCHANGED if linked else NOT_LINKED)
                break
        else:
            raise ReportDeferred("the device kept changing while the message was applied")
        return Applied(outcome, entry, read.entry_exists, tuple(refused))

    def queue_device_write(
        self, agent_user_id: str, device_id: str, device: Device, before: DeviceDocument | None, entry_id: str
    ) -> Applied:
        """Queues the report of a change written to the device document by someone else (entry `entry_id`), and
        the announcement of a run it finished; raises ReportDeferred (retry)."""
        rt = self._rt
        runcycle_id = planning.stable_id("runcycle", entry_id)
        for _ in range(MAX_APPLY_ATTEMPTS):
            now = rt.clock_ms()
            read = rt.store.read_for_apply(agent_user_id, device_id, entry_id, [runcycle_id], None)
            if read.user is None or not read.user.linked:
                return Applied(NOT_LINKED)
            if read.entry_exists:
                return Applied(REPORTED, already_queued=True)
            events: list[Event] = []
            before_state = (before or {}).get("state") or {}
            completion = planning.completion_notifications(device, before_state, device.state)
            if completion and device.notifications_supported and runcycle_id not in read.seen_events:
                events.append(Event(runcycle_id, device_id, NOTIFICATION, completion, now))
            if not device.will_report_state and not events:
                return Applied(IGNORED)
            entry = QueueEntry(entry_id, device_id, now, events=tuple(events))
            write = ApplyWrite(device_id, entry=entry, seen_events=tuple(e.event_id for e in events))
            if rt.store.commit_apply(agent_user_id, write, now):
                return Applied(REPORTED, queued=entry)
        raise ReportDeferred("could not queue the device change")


def _stored_device(device_id: str, stored: StoredDevice | None, fields: Mapping[str, Any]) -> Device:
    if stored is None:
        raise InvalidMessage(f"no device {device_id!r} for this user")
    try:
        return parse_device(device_id, stored.document)
    except InvalidDevice as problem:
        log.error("the stored device is invalid", extra={**fields, "reason": str(problem)})
        raise InvalidMessage(f"the stored device {device_id!r} is invalid") from problem


def _message_events(
    message: StateMessage,
    device: Device,
    after: Device,
    read: ApplyRead,
    runcycle_id: str,
    now: int,
    fields: Mapping[str, Any],
) -> list[Event]:
    """What the message announces: its notifications, and what its state change completes (a finished run), unless
    the message announces that trait itself."""
    events: list[Event] = []
    if message.notifications:
        assert message.event_id is not None
        if not device.notifications_supported:
            log.info("device does not declare notificationSupportedByAgent: notification not sent", extra=fields)
        elif message.event_id in read.seen_events:
            log.info("event announced before: not announced again", extra={**fields, "event": message.event_id})
        else:
            events.append(Event(message.event_id, device.id, NOTIFICATION, dict(message.notifications), now))
    if device.notifications_supported:
        # A trait the message announces itself is not announced a second time from its state change.
        completion = planning.completion_notifications(
            device, device.state, after.state, announced=message.notifications or {}
        )
        if completion:
            events.append(Event(runcycle_id, device.id, NOTIFICATION, completion, now))
    return events


def _completes(message: StateMessage, read: ApplyRead) -> bool:
    """Whether the message completes the device's pending command it names (still pending)."""
    pending = read.pending
    return (
        message.command_id is not None
        and pending is not None
        and pending.device_id == message.device_id
        and pending.completed_by is None
    )


def _follow_up(
    message: StateMessage, after: Device, read: ApplyRead, entry_id: str, now: int, fields: Mapping[str, Any]
) -> Event | None:
    """The follow-up response of the pending command the message completes, if it is still due."""
    if message.command_id is None:
        return None
    pending = read.pending
    extra = {**fields, "commandId": message.command_id}
    if pending is None or pending.device_id != message.device_id:
        log.warning("no pending command with this commandId for the device: no follow-up", extra=extra)
        return None
    if pending.completed_by is not None:
        if pending.completed_by != entry_id:
            log.info("the command's follow-up was already sent: not sent again", extra=extra)
        return None
    if pending.token is None:
        log.info("Google gave the command no followUpToken: its state is reported, no follow-up", extra=extra)
        return None
    if pending.expires_ms <= now:
        log.warning("the follow-up token expired: no follow-up sent", extra=extra)
        return None
    payload = planning.follow_up_notifications(
        pending.command, pending.token, pending.params, after.state, message.error_code
    )
    if payload is None:
        log.warning("the command has no follow-up response", extra=extra)
        return None
    event_id = planning.stable_id("followup", message.command_id)
    return Event(event_id, message.device_id, FOLLOW_UP, payload, now, expires_ms=pending.expires_ms)
