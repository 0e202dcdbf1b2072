"""Report State planning: what HomeGraph must hear about a user's devices, as few calls as that takes.

Pure functions over devices (functions.core.device), the states HomeGraph was last told, and the pending
announcements (proactive notifications and follow-up responses); no storage, no transport.

Rules (Google's Report State and notifications documentation):
  * only what a device's traits report is sent (`Device.query_states` per trait: never private bookkeeping such
    as a stored guest-network password, nothing for command-only traits): an unknown key makes Google answer
    INVALID_ARGUMENT for the whole call;
  * HomeGraph overwrites a device's state trait by trait, so a trait whose state changed is sent whole, and a
    trait that did not change is not sent at all (deduplication against the last reported state);
  * `online` is sent when it changed;
  * states go only for devices whose SYNC says willReportState;
  * a request carries one `eventId`, so each announcement (notification or follow-up) gets a call of its own;
    the other devices' states ride along in the first call; a follow-up carries its device's current states.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.core import traits as trait_registry
from functions.core.device import Device
from functions.core.schema import errors as schema_errors
from functions.core.traits.base import Trait

# Devices per call: a full report of a large home is split (HomeGraph documents no limit; this keeps a
# request far below any payload limit and a 400 from costing a whole home's report).
MAX_DEVICES_PER_CALL = 100
ONLINE = "online"
NOTIFICATION = "notification"
FOLLOW_UP = "followUp"


def stable_id(*parts: str) -> str:
    """A short id derived from `parts` (document ids of queue entries, event ids): the same parts, the same id."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Event:
    """One announcement for one device: a proactive notification or a follow-up response.

    `notifications` is the device's share of the request's `payload.devices.notifications` (keyed by trait).
    A follow-up's payload holds Google's followUpToken: it is never logged.
    """

    event_id: str
    device_id: str
    kind: str  # NOTIFICATION | FOLLOW_UP
    notifications: dict[str, Any]
    created_ms: int
    expires_ms: int | None = None  # a follow-up token's expiry

    def to_dict(self) -> dict[str, Any]:
        data = {
            "eventId": self.event_id,
            "deviceId": self.device_id,
            "kind": self.kind,
            "notifications": self.notifications,
            "createdAt": self.created_ms,
        }
        if self.expires_ms is not None:
            data["expiresAt"] = self.expires_ms
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            event_id=str(data["eventId"]),
            device_id=str(data["deviceId"]),
            kind=str(data["kind"]),
            notifications=dict(data["notifications"]),
            created_ms=int(data["createdAt"]),
            expires_ms=int(data["expiresAt"]) if data.get("expiresAt") is not None else None,
        )


@dataclass(frozen=True)
class QueueEntry:
    """Something to report for a user: a device whose state changed (or every device, for a full report after a
    SYNC), with the announcements that go with it. It stays queued until HomeGraph has it."""

    entry_id: str
    device_id: str | None  # None: all of the user's devices
    created_ms: int
    full: bool = False  # report every trait, whatever was reported before
    events: tuple[Event, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "deviceId": self.device_id,
            "createdAt": self.created_ms,
            "full": self.full,
            "events": [event.to_dict() for event in self.events],
        }

    @classmethod
    def from_dict(cls, entry_id: str, data: Mapping[str, Any]) -> QueueEntry:
        device_id = data.get("deviceId")
        return cls(
            entry_id=entry_id,
            device_id=str(device_id) if device_id is not None else None,
            created_ms=int(data.get("createdAt") or 0),
            full=bool(data.get("full")),
            events=tuple(Event.from_dict(e) for e in data.get("events") or ()),
        )


@dataclass(frozen=True)
class DeviceView:
    """A device as stored now (None if it is gone or invalid) and the states HomeGraph was last told."""

    device: Device | None
    reported: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Call:
    """One reportStateAndNotification request."""

    request_id: str
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    event: Event | None = None

    def body(self, agent_user_id: str) -> dict[str, Any]:
        devices: dict[str, Any] = {}
        if self.states:
            devices["states"] = self.states
        if self.event is not None:
            devices["notifications"] = {self.event.device_id: self.event.notifications}
        body: dict[str, Any] = {
            "requestId": self.request_id,
            "agentUserId": agent_user_id,
            "payload": {"devices": devices},
        }
        if self.event is not None:
            body["eventId"] = self.event.event_id
        return body

    def device_ids(self) -> set[str]:
        return set(self.states) | ({self.event.device_id} if self.event else set())


# States


def _trait_states(trait: Trait, device: Device, source: Mapping[str, Any]) -> dict[str, Any]:
    return trait.query_states(device.attributes, source)


def changed_states(device: Device, reported: Mapping[str, Any], full: bool = False) -> dict[str, Any]:
    """The states to send for `device`: every trait whose reportable state differs from what was reported (whole),
    and `online` if it changed; with `full`, everything the device reports."""
    states: dict[str, Any] = {}
    for trait in device.traits:
        current = _trait_states(trait, device, device.state)
        if not current:
            continue  # nothing reportable (command-only, a trait without states, no value stored yet)
        if full or current != _trait_states(trait, device, reported):
            states.update(current)
    if full or reported.get(ONLINE) != device.online:
        states[ONLINE] = device.online
    return states


def all_states(device: Device) -> dict[str, Any]:
    return changed_states(device, {}, full=True)


def reported_after(device: Device, reported: Mapping[str, Any], sent: Mapping[str, Any]) -> dict[str, Any]:
    """What HomeGraph holds for the device once `sent` was accepted: the traits sent replace theirs whole."""
    replaced: set[str] = set()
    for trait in device.traits:
        keys = trait.state_keys(device.attributes)
        if keys & set(sent):
            replaced |= keys
    if ONLINE in sent:
        replaced.add(ONLINE)
    merged = {key: value for key, value in reported.items() if key not in replaced}
    merged.update(sent)
    return merged


# Calls


def plan(
    entries: Sequence[QueueEntry],
    views: Mapping[str, DeviceView],
    now_ms: int,
    new_request_id: Callable[[], str],
) -> tuple[list[Call], list[tuple[Event, str]]]:
    """The calls that report `entries`, and the announcements left out, each with the reason.

    `views` holds every device the entries name (all of the user's devices when an entry has no device).
    """
    everyone = any(entry.device_id is None for entry in entries)
    full_ids = {entry.device_id for entry in entries if entry.full}
    wanted = sorted(views) if everyone else sorted({e.device_id for e in entries if e.device_id is not None})
    pending: dict[str, dict[str, Any]] = {}
    for device_id in wanted:
        view = views.get(device_id)
        if view is None or view.device is None or not view.device.will_report_state:
            continue
        full = device_id in full_ids or (everyone and None in full_ids)
        states = changed_states(view.device, view.reported, full)
        if states:
            pending[device_id] = states

    events: list[Event] = []
    dropped: list[tuple[Event, str]] = []
    seen: set[str] = set()
    for entry in entries:
        for event in entry.events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            view = views.get(event.device_id)
            device = view.device if view else None
            if event.expires_ms is not None and event.expires_ms <= now_ms:
                dropped.append((event, "the follow-up token expired before Google could be told"))
            elif device is None:
                dropped.append((event, "the device is gone"))
            elif event.kind == NOTIFICATION and not device.notifications_supported:
                dropped.append((event, "the device no longer declares notificationSupportedByAgent"))
            else:
                events.append(event)

    calls: list[Call] = []
    for event in sorted(events, key=lambda e: e.created_ms):
        call = Call(new_request_id(), event=event)
        view = views[event.device_id]
        if event.device_id in pending:
            call.states[event.device_id] = pending.pop(event.device_id)
        elif event.kind == FOLLOW_UP and view.device is not None and view.device.will_report_state:
            # Google hears the outcome together with the state it produced.
            call.states[event.device_id] = all_states(view.device)
        calls.append(call)
    rest = list(pending.items())
    if calls and rest:
        room = MAX_DEVICES_PER_CALL - len(calls[0].states)
        calls[0].states.update(rest[:room])
        rest = rest[room:]
    for start in range(0, len(rest), MAX_DEVICES_PER_CALL):
        calls.append(Call(new_request_id(), states=dict(rest[start : start + MAX_DEVICES_PER_CALL])))
    return calls, dropped


def split(call: Call, new_request_id: Callable[[], str]) -> list[Call]:
    """`call` as one call per device (and its announcement alone), to find which part Google refused."""
    parts: list[Call] = []
    if call.event is not None:
        parts.append(Call(new_request_id(), event=call.event))
    for device_id, states in call.states.items():
        parts.append(Call(new_request_id(), states={device_id: states}))
    return parts


# What a message may change and announce


def state_changes(
    device: Device, states: Mapping[str, Any], online: bool | None
) -> tuple[Device, list[str], list[str]]:
    """The device after applying `states` (and `online`), the keys ignored (no trait of the device defines them)
    and the problems the new values have (empty when they are valid). Problems the stored state already had are
    not blamed on the message."""
    keys = device.reportable_keys()
    ignored = sorted(key for key in states if key not in keys)
    after = device.with_state(states)
    if online is not None:
        after = Device(after.id, after.definition, after.state, online, after.settings)
    problems = _state_problems(after)
    if problems:
        before_problems = set(_state_problems(device))
        problems = [p for p in problems if p not in before_problems]
    return after, ignored, problems


def _state_problems(device: Device) -> list[str]:
    problems: list[str] = []
    for trait in device.traits:
        problems.extend(trait.state_errors(device.attributes, device.state))
    return problems


def notification_problems(device: Device, notifications: Mapping[str, Any]) -> list[str]:
    """Why `notifications` (keyed by trait short name) cannot be announced for `device`; empty if they can."""
    problems: list[str] = []
    for name, payload in notifications.items():
        trait = trait_registry.get(name)
        if trait is None or trait.full_name() not in device.trait_names:
            problems.append(f"notifications.{name}: not a trait of device {device.id!r}")
            continue
        if trait.notification_schema is None:
            problems.append(f"notifications.{name}: {name} has no proactive notifications")
            continue
        problems.extend(schema_errors(trait.notification_schema, {name: payload}, "notifications"))
    return problems


def completion_notifications(
    device: Device, before: Mapping[str, Any], after: Mapping[str, Any], announced: Collection[str] = ()
) -> dict[str, Any]:
    """Announcements a state change implies by itself (a washer that finished running), keyed by trait: what each
    of the device's traits says about the change (`Trait.completion_notification`). Traits named in `announced`
    (a message that brings its own notification for the trait) are not asked."""
    found: dict[str, Any] = {}
    for trait in device.traits:
        if trait.name in announced:
            continue
        notification = trait.completion_notification(before, after)
        if notification:
            found.update(notification)
    return found


def follow_up_notifications(
    command: str, token: str, params: Mapping[str, Any], state: Mapping[str, Any], error_code: str | None
) -> dict[str, Any] | None:
    """The follow-up response of a finished command (keyed by trait), or None if its trait sends none."""
    trait = trait_registry.for_command(command)
    if trait is None or not trait.sends_follow_ups():
        return None
    if error_code:
        return trait.follow_up_failure(token, error_code)
    return trait.follow_up_payload(token, params, state)


def device_ids_of(entries: Iterable[QueueEntry]) -> set[str] | None:
    """The devices the entries need (None: all of the user's)."""
    ids: set[str] = set()
    for entry in entries:
        if entry.device_id is None:
            return None
        ids.add(entry.device_id)
        ids.update(event.device_id for event in entry.events)
    return ids
