"""Flushing a user's queue: one reportStateAndNotification for all of it, and what to do when HomeGraph refuses.

The flusher (the holder of the user's lease, functions.reporting.lease) reads the whole queue, reads those devices
and what was last reported for them, and sends one reportStateAndNotification for all of them (plus one per
announcement: a request carries one eventId; functions.reporting.planning decides the calls), then records what
HomeGraph now holds and deletes the entries it covered, in one batch. Before every further call it renews the
lease: a flusher that lost it stops, and the new holder carries on.

HomeGraph errors. 404 means that Google does not know the user, or does not know a device of the call (one added
after the last SYNC, one whose SYNC Google refused); `devices.query` for the call's devices tells which (`_whom`):
  * the query answers 404 too: the 404 is about the user, who is marked unlinked (nothing more is reported until
    their next SYNC) and whose queue is dropped, except within `initial_report_delay_s` of a SYNC, when Google may
    simply not have processed it yet (the call is dropped; the full report after the SYNC follows);
  * the query cannot tell (it is refused, or lists every device of the call): the call is dropped with a log line
    and nobody is unlinked (one unexplained 404 must not stop a household's reports);
  * the query answers without some of the call's devices (or with errorCode deviceNotFound): those are unknown
    devices. The user stays linked and gets a Request Sync (`_request_sync`), and the rest of the call is sent
    again at once. The unknown devices' states are not recorded as reported, so they stay what HomeGraph must be
    told and the full report after the SYNC sends them; their announcements are dropped (Google cannot announce a
    device it does not know, and would announce it too late after a SYNC);
  * the query fails transiently: as any transient error (below); nothing is unlinked.
400 (and 401/403): logged with the reason; a call that mixed devices is retried device by device so that one bad
device costs only its own report; what Google still refuses is dropped. 429, 5xx and timeouts: the client's bounded
retries with backoff, then the flush stops and returns the failure (the lease holder keeps the lease for
`retry_after_s` and the invocation fails, so Pub/Sub redelivers).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.core import vitals
from functions.core.device import Device, parse_device
from functions.core.errors import InvalidDevice
from functions.core.homegraph import BadRequest, Forbidden, NotFound, Transient
from functions.core.ports import DeviceDocument
from functions.reporting import planning
from functions.reporting.model import UserRecord
from functions.reporting.planning import Call, DeviceView, Event, QueueEntry
from functions.reporting.redaction import loggable
from functions.reporting.runtime import Runtime

log = logging.getLogger(__name__)

MAX_QUEUE_READ = 500

# What a 404 turned out to be about (`Flusher._whom`).
ABOUT_USER = "user"  # the query answered 404 too: Google does not know the user
ABOUT_UNCLEAR = "unclear"  # the query was refused or names no unknown device: the call is dropped, nobody unlinked
ABOUT_DEVICES = "devices"  # the query answered without some of the call's devices
ABOUT_UNKNOWN_YET = "unknown yet"  # the query failed transiently (or the lease was lost before it)


@dataclass
class FlushResult:
    covered: set[str]
    transient: Transient | None = None
    calls: int = 0
    seen: set[str] = field(default_factory=set)  # the entries the queue held when it was read
    read_at_ms: int = 0
    truncated: bool = False  # the queue held more than one read returns
    shaky: set[str] = field(default_factory=set)  # devices sent in a call that needed retries


@dataclass(frozen=True)
class Verdict:
    """What a 404 was about, as devices.query tells it."""

    about: str  # ABOUT_*
    unknown: frozenset[str] = frozenset()  # the call's devices Google does not know (ABOUT_DEVICES)
    failure: Transient | None = None  # ABOUT_UNKNOWN_YET
    why: str = ""


@dataclass(frozen=True)
class SyncAsked:
    """How the Request Sync for unknown devices went (at most one per flush)."""

    outcome: str
    failure: Transient | None = None  # retry the flush later
    user_unknown: bool = False  # requestSync answered 404: the user is unknown after all


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
        unknown_devices: set[str] = set()  # devices Google said (by a 404 and the query) it does not know
        sync: SyncAsked | None = None
        # A full report follows a SYNC: if Google still lacks a device then, another SYNC would not teach it either.
        reporting_all = any(entry.device_id is None for entry in entries)
        while todo:
            call = todo.popleft()
            if unknown_devices & call.device_ids():
                stripped, dropped_event = _without(call, unknown_devices, rt.new_id)
                if dropped_event is not None:
                    log.warning(
                        "announcement not sent: HomeGraph does not know the device",
                        extra={"agentUserId": agent_user_id, "deviceId": dropped_event.device_id},
                    )
                    settled.add(dropped_event.event_id)
                if stripped is None:
                    continue
                call = stripped
            body = call.body(agent_user_id)
            if made and owner is not None and not self._renew(agent_user_id, owner):
                transient = Transient("reportStateAndNotification", None, "the user's lease was lost")
                unsent = [call, *todo]
                break
            made += 1
            try:
                answer = rt.homegraph().report_state_and_notification(body)
            except NotFound:
                verdict = self._whom(agent_user_id, call, owner)
                if verdict.about == ABOUT_UNKNOWN_YET:
                    _log_404(agent_user_id, call, verdict, "deferred: reported later, the user stays linked")
                    transient = verdict.failure
                    unsent = [call, *todo]
                    break
                if verdict.about == ABOUT_DEVICES:
                    asked_before = sync is not None  # one Request Sync per flush
                    if sync is None:
                        sync = self._request_sync(agent_user_id, user, owner, reporting_all)
                    if sync.failure is not None:
                        _log_404(agent_user_id, call, verdict, f"{sync.outcome}; the call is reported later")
                        transient = sync.failure
                        unsent = [call, *todo]  # the unknown devices' entries stay queued: the retry asks again
                        break
                    if not sync.user_unknown:
                        earlier = " (earlier in this flush)" if asked_before else ""
                        rest = "the rest of the call sent again" if call.device_ids() - verdict.unknown else "no rest"
                        _log_404(agent_user_id, call, verdict, f"{sync.outcome}{earlier}; {rest}")
                        unknown_devices |= verdict.unknown
                        todo.appendleft(call)  # stripped of the unknown devices at the top of the loop
                        continue
                    verdict = Verdict(ABOUT_USER, verdict.unknown, why="requestSync answered 404")
                if verdict.about == ABOUT_UNCLEAR:
                    # Google knows the user and every device, yet refused the call: not a reason to unlink a
                    # household. The call is dropped (the next change of its devices is reported again).
                    _log_404(agent_user_id, call, verdict, "dropped: the user and the devices are known to Google")
                    settled |= {call.event.event_id} if call.event else set()
                    continue
                if self._within_sync_delay(user.linked_at_ms):
                    _log_404(agent_user_id, call, verdict, "dropped: Google may not have processed the last SYNC yet")
                    settled |= {call.event.event_id} if call.event else set()
                    continue
                unlinked = rt.store.mark_unlinked(agent_user_id, user, rt.clock_ms())
                _log_404(
                    agent_user_id,
                    call,
                    verdict,
                    "marked unlinked: nothing is reported until their next SYNC",
                    marked=unlinked,
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
            _log_devices_reported(agent_user_id, call, views, entries, now_reported, rt.clock_ms())
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

    def _renew(self, agent_user_id: str, owner: str) -> bool:
        """Renews the user's lease before a further call; False if it went to another flusher."""
        now = self._rt.clock_ms()
        return self._rt.store.try_lease(agent_user_id, owner, now, now + self._rt.settings.lease_ms) == 0

    def _within_sync_delay(self, linked_at_ms: int) -> bool:
        return self._rt.clock_ms() - linked_at_ms < self._rt.settings.initial_report_delay_s * 1000

    def _whom(self, agent_user_id: str, call: Call, owner: str | None) -> Verdict:
        """What the 404 to `call` was about: devices.query for the call's devices answers it."""
        if owner is not None and not self._renew(agent_user_id, owner):
            return Verdict(ABOUT_UNKNOWN_YET, failure=Transient("query", None, "the user's lease was lost"))
        asked = sorted(call.device_ids())
        try:
            answer = self._rt.homegraph().query(agent_user_id, asked)
        except NotFound:
            return Verdict(ABOUT_USER, why="the query answered 404 too")
        except Transient as failure:
            return Verdict(ABOUT_UNKNOWN_YET, failure=failure, why=f"the query failed: {failure}")
        except (BadRequest, Forbidden) as refused:
            return Verdict(ABOUT_UNCLEAR, why=f"the query was refused: {refused.status} {refused.reason}")
        payload = answer.body.get("payload")
        held = payload.get("devices") if isinstance(payload, Mapping) else None
        if not isinstance(held, Mapping):
            return Verdict(ABOUT_UNCLEAR, why="the query answered without payload.devices")
        unknown = frozenset(device_id for device_id in asked if not _known_to_google(held.get(device_id)))
        if not unknown:
            return Verdict(ABOUT_UNCLEAR, why="the query lists every device of the call")
        return Verdict(ABOUT_DEVICES, unknown, why="the query lacks them")

    def _request_sync(self, agent_user_id: str, user: UserRecord, owner: str | None, reporting_all: bool) -> SyncAsked:
        """Asks Google to SYNC the user, whose devices it partly does not know; the caller asks once per flush.

        The call goes straight to HomeGraph rather than through functions.request_sync: that feature publishes
        no API (it coalesces device-document writes by their commit times, per Eventarc event), and it needs
        none here. A flush runs under the user's lease, so one per flush is one at a time per user; after the
        SYNC, no other is asked for `initial_report_delay_s` (below), which spaces them out; and asynchronous
        requestSyncs of a user are coalesced by Google anyway. Not asked when it cannot help: right after a SYNC
        (Google is still processing it, and its full report follows), and in the full report after a SYNC (the
        SYNC did not teach Google the device, another would not either: asking would start a SYNC loop).
        """
        if self._within_sync_delay(user.linked_at_ms):
            return SyncAsked("requestSync not asked: a SYNC just ran, its full report sends the devices")
        if reporting_all:
            return SyncAsked("requestSync not asked: the SYNC before this full report left them out")
        if owner is not None and not self._renew(agent_user_id, owner):
            return SyncAsked("the user's lease was lost", Transient("requestSync", None, "the user's lease was lost"))
        try:
            self._rt.homegraph().request_sync(agent_user_id)
        except NotFound:
            return SyncAsked("requestSync answered 404", user_unknown=True)
        except Transient as failure:
            return SyncAsked(f"requestSync failed: {failure}", failure)
        except (BadRequest, Forbidden) as refused:
            log.error(
                "requestSync for devices HomeGraph does not know was refused; they wait for the next SYNC",
                extra={"agentUserId": agent_user_id, "status": refused.status, "reason": refused.reason},
            )
            return SyncAsked(f"requestSync refused ({refused.status})")
        return SyncAsked("requestSync sent")


def _known_to_google(held: Any) -> bool:
    """Whether a device's entry in a devices.query answer shows Google knows the device."""
    if not isinstance(held, Mapping):
        return False  # absent
    return held.get("errorCode") != "deviceNotFound" and held.get("status") != "ERROR"


def _without(call: Call, devices: set[str], new_request_id: Callable[[], str]) -> tuple[Call | None, Event | None]:
    """`call` without the states and announcement of `devices` (None if nothing is left), and the announcement
    left out."""
    states = {device_id: states for device_id, states in call.states.items() if device_id not in devices}
    left_out = call.event if call.event is not None and call.event.device_id in devices else None
    event = None if left_out is not None else call.event
    if not states and event is None:
        return None, left_out
    return Call(new_request_id(), states, event), left_out


def _log_404(agent_user_id: str, call: Call, verdict: Verdict, outcome: str, **more: Any) -> None:
    """One line per 404 decision: whom it was about, the devices Google lacks, and what was done."""
    log.warning(
        f"HomeGraph answered 404: {outcome}",
        extra={
            **_call_fields(agent_user_id, call),
            "about": verdict.about,
            "unknownDevices": sorted(verdict.unknown),
            "why": verdict.why,
            "outcome": outcome,
            **more,
        },
    )


def _note_reported(now_reported: dict[str, dict[str, Any]], views: Mapping[str, DeviceView], call: Call) -> None:
    for device_id, states in call.states.items():
        device = views[device_id].device
        assert device is not None
        base = now_reported.get(device_id, views[device_id].reported)
        now_reported[device_id] = planning.reported_after(device, base, states)


def _log_devices_reported(
    agent_user_id: str,
    call: Call,
    views: Mapping[str, DeviceView],
    entries: Sequence[QueueEntry],
    now_reported: Mapping[str, Mapping[str, Any]],
    now_ms: int,
) -> None:
    """Home Vitals' "device reported" line (functions.core.vitals), one per device of a call HomeGraph accepted: how
    long after its change was queued the report went out (the oldest entry it covers), and a hash of the states
    HomeGraph now holds for it (the state accuracy estimate compares QUERY answers with it)."""
    queued_at: dict[str | None, int] = {}
    for entry in entries:
        queued_at[entry.device_id] = min(queued_at.get(entry.device_id, entry.created_ms), entry.created_ms)
    user = vitals.user_hash(agent_user_id)
    for device_id in call.states:
        device = views[device_id].device
        # The entry of the device's own change, or of a full report (no device: it covers every device).
        changed_ms = min((queued_at[key] for key in (device_id, None) if key in queued_at), default=now_ms)
        log.info(
            vitals.DEVICE_REPORTED_LINE,
            extra={
                "deviceId": device_id,
                "deviceType": device.type if device is not None else "unknown",
                "freshnessMs": max(0, now_ms - changed_ms),
                "userHash": user,
                "statesHash": vitals.states_hash(now_reported.get(device_id, {})),
                "requestId": call.request_id,
                "atMs": now_ms,
            },
        )


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
