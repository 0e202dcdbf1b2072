"""Flushing a user's queue: one reportStateAndNotification for all of it, and what to do when HomeGraph refuses.

The flusher (the holder of the user's lease, functions.reporting.lease) reads the whole queue, reads those devices
and what was last reported for them, and sends one reportStateAndNotification for all of them (plus one per
announcement: a request carries one eventId; functions.reporting.planning decides the calls), then records what
HomeGraph now holds and deletes the entries it covered, in one batch. Before every further call it renews the
lease: a flusher that lost it stops, and the new holder carries on.

HomeGraph errors. 404: the user is marked unlinked (nothing more is reported until their next SYNC) and their
queue is dropped, except within `initial_report_delay_s` of a SYNC, when Google may simply not have processed it
yet (the full report after it follows). 400 (and 401/403): logged with the reason; a call that mixed devices is
retried device by device so that one bad device costs only its own report; what Google still refuses is dropped.
429, 5xx and timeouts: the client's bounded retries with backoff, then the flush stops and returns the failure
(the lease holder keeps the lease for `retry_after_s` and the invocation fails, so Pub/Sub redelivers).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core.device import Device, parse_device
from functions.core.errors import InvalidDevice
from functions.core.homegraph import BadRequest, Forbidden, NotFound, Transient
from functions.core.ports import DeviceDocument
from functions.reporting import planning
from functions.reporting.planning import Call, DeviceView, Event
from functions.reporting.redaction import loggable
from functions.reporting.runtime import Runtime

log = logging.getLogger(__name__)

MAX_QUEUE_READ = 500


@dataclass
class FlushResult:
    covered: set[str]
    transient: Transient | None = None
    calls: int = 0
    seen: set[str] = field(default_factory=set)  # the entries the queue held when it was read
    read_at_ms: int = 0
    truncated: bool = False  # the queue held more than one read returns
    shaky: set[str] = field(default_factory=set)  # devices sent in a call that needed retries


class Flusher:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def flush(self, agent_user_id: str, owner: str | None = None) -> FlushResult:
        """Reports the user's queue (the caller holds the lease as `owner`, renewed before every further call)."""
        rt = self._rt
        started = rt.monotonic()
        read_at_ms = rt.clock_ms()
        entries = rt.store.queue(agent_user_id, MAX_QUEUE_READ)
        seen = {entry.entry_id for entry in entries}
        truncated = len(entries) >= MAX_QUEUE_READ
        if not entries:
            return FlushResult(set(), read_at_ms=read_at_ms)
        now = rt.clock_ms()
        user, raw = rt.store.flush_read(agent_user_id, planning.device_ids_of(entries))
        every_id = [entry.entry_id for entry in entries]
        if user is None or not user.linked:
            rt.store.commit_flush(agent_user_id, {}, every_id, {}, now)
            log.info("user not linked: queued reports dropped", extra={"agentUserId": agent_user_id})
            return FlushResult(set(every_id), seen=seen, read_at_ms=read_at_ms, truncated=truncated)
        views: dict[str, DeviceView] = {}
        for device_id, (document, reported) in raw.items():
            views[device_id] = DeviceView(_parse_quietly(agent_user_id, device_id, document), reported)
        calls, dropped = planning.plan(entries, views, now, rt.new_id)
        for event, reason in dropped:
            log.warning(
                "announcement not sent",
                extra={"agentUserId": agent_user_id, "deviceId": event.device_id, "kind": event.kind, "reason": reason},
            )

        now_reported: dict[str, dict[str, Any]] = {}
        settled: set[str] = {event.event_id for event, _ in dropped}  # events sent or given up
        unsent: list[Call] = []
        shaky: set[str] = set()
        todo = deque(calls)
        made = 0
        transient: Transient | None = None
        while todo:
            call = todo.popleft()
            body = call.body(agent_user_id)
            if made and owner is not None:
                now = rt.clock_ms()
                if rt.store.try_lease(agent_user_id, owner, now, now + rt.settings.lease_ms) != 0:
                    transient = Transient("reportStateAndNotification", None, "the user's lease was lost")
                    unsent = [call, *todo]
                    break
            made += 1
            try:
                answer = rt.homegraph().report_state_and_notification(body)
            except NotFound:
                if rt.clock_ms() - user.linked_at_ms < rt.settings.initial_report_delay_s * 1000:
                    log.warning(
                        "HomeGraph does not know the user or device yet (SYNC in progress); dropped",
                        extra=_call_fields(agent_user_id, call),
                    )
                    settled |= {call.event.event_id} if call.event else set()
                    continue
                unlinked = rt.store.mark_unlinked(agent_user_id, user, rt.clock_ms())
                log.warning(
                    "HomeGraph does not know the user: marked unlinked, nothing is reported until their next SYNC",
                    extra={**_call_fields(agent_user_id, call), "marked": unlinked},
                )
                rt.store.commit_flush(agent_user_id, {}, every_id, {}, rt.clock_ms())
                return FlushResult(set(every_id), None, made, seen, read_at_ms, truncated)
            except (BadRequest, Forbidden) as refused:
                if len(call.states) + (1 if call.event else 0) > 1:
                    todo.extendleft(reversed(planning.split(call, rt.new_id)))
                    continue
                log.error(
                    "HomeGraph refused the report; dropped",
                    extra={
                        **_call_fields(agent_user_id, call),
                        "status": refused.status,
                        "reason": refused.reason,
                        "body": loggable(body),
                    },
                )
                settled |= {call.event.event_id} if call.event else set()
                if isinstance(refused, BadRequest):
                    # Given up for good: not sent again unless the state changes (403 is a setup problem; once
                    # fixed, the next report of the device carries the state again).
                    _note_reported(now_reported, views, call)
                continue
            except Transient as failure:
                transient = failure
                unsent = [call, *todo]
                break
            _note_reported(now_reported, views, call)
            if answer.attempts > 1:
                shaky |= set(call.states)
            if call.event is not None:
                settled.add(call.event.event_id)
            log.info("reported", extra=_call_fields(agent_user_id, call))

        unsent_devices = {device_id for call in unsent for device_id in call.states}
        done: list[str] = []
        remaining: dict[str, tuple[Event, ...]] = {}
        for entry in entries:
            left = tuple(event for event in entry.events if event.event_id not in settled)
            states_pending = (entry.device_id is None and bool(unsent_devices)) or entry.device_id in unsent_devices
            if not left and not states_pending:
                done.append(entry.entry_id)
            elif len(left) < len(entry.events):
                remaining[entry.entry_id] = left
        rt.store.commit_flush(agent_user_id, now_reported, done, remaining, rt.clock_ms())
        log.info(
            "flushed",
            extra={
                "agentUserId": agent_user_id,
                "entries": len(entries),
                "covered": len(done),
                "calls": made,
                "flushMs": round((rt.monotonic() - started) * 1000),
            },
        )
        return FlushResult(set(done), transient, made, seen, read_at_ms, truncated, shaky)


def _note_reported(now_reported: dict[str, dict[str, Any]], views: Mapping[str, DeviceView], call: Call) -> None:
    for device_id, states in call.states.items():
        device = views[device_id].device
        assert device is not None
        base = now_reported.get(device_id, views[device_id].reported)
        now_reported[device_id] = planning.reported_after(device, base, states)


def _parse_quietly(agent_user_id: str, device_id: str, document: DeviceDocument | None) -> Device | None:
    if document is None:
        return None
    try:
        return parse_device(device_id, document)
    except InvalidDevice as problem:
        log.error(
            "invalid device document: not reported",
            extra={"agentUserId": agent_user_id, "deviceId": device_id, "reason": str(problem)},
        )
        return None


def _call_fields(agent_user_id: str, call: Call) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "agentUserId": agent_user_id,
        "requestId": call.request_id,
        "devices": len(call.states),
    }
    if call.event is not None:
        fields.update(eventKind=call.event.kind, eventDevice=call.event.device_id)
    return fields
