"""What a trait is: its attributes, states, commands and errors, in one class per module.

A trait module subclasses `Trait`, declares its schemas (our own, following Google's documentation and the
smart-home schema), marks command handlers with `@command(...)`, and is registered by name with `@register`.
Handlers are pure: they read a `CommandContext` and return the state changes as an `Effect`, or raise
`CommandError` with one of Google's codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from functions.core import errors
from functions.core.schema import JsonSchema, obj
from functions.core.schema import errors as schema_errors

TRAIT_PREFIX = "action.devices.traits."
COMMAND_PREFIX = "action.devices.commands."


@dataclass(frozen=True)
class CommandContext:
    """Everything a handler may look at; `state` is the device's state after earlier commands of this request."""

    device_id: str
    command: str
    params: Mapping[str, Any]
    attributes: Mapping[str, Any]
    state: Mapping[str, Any]
    now_ms: int
    follow_up_token: str | None = None
    language: str = "en"
    # The device's customData (Google's per-device field for the integration's own use, echoed in every EXECUTE):
    # configuration a command needs that is not state, such as a camera's stream addresses.
    custom_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Effect:
    """The outcome of a command.

    `state`: state keys to store (merged into the device's state); `results`: values returned to Google in the
    EXECUTE response but never stored (a stream URL, a guest password); `pending`: the device completes the
    command asynchronously and a follow-up response will report the result.
    """

    state: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    pending: bool = False


Handler = Callable[[Any, CommandContext], "Effect | dict[str, Any]"]


@dataclass(frozen=True)
class Command:
    name: str  # full name, e.g. action.devices.commands.OnOff
    params_schema: JsonSchema
    handler: Handler
    # The device takes its time (a lock's bolt, a door, a dishwasher's cycle): a device cloud answers it PENDING
    # and reports the final state later (Google's guidance of 2026-08-12, see `Trait.is_long_running`).
    long_running: bool = False


def command(
    short_name: str, params: JsonSchema | None = None, *, long_running: bool = False
) -> Callable[[Handler], Handler]:
    """Marks a trait method as the handler of `action.devices.commands.<short_name>`."""

    def mark(handler: Handler) -> Handler:
        spec = Command(COMMAND_PREFIX + short_name, params or obj(), handler, long_running)
        handler._command = spec  # type: ignore[attr-defined]
        return handler

    return mark


class Trait:
    """Base class of every trait module. Subclasses set the class attributes below."""

    name: ClassVar[str]  # short name, e.g. "OnOff"
    attributes_schema: ClassVar[JsonSchema] = obj()
    states_schema: ClassVar[JsonSchema] = obj()
    # Attribute switches shared by many traits (commandOnlyOnOff, queryOnlyOpenClose, ...).
    command_only_attribute: ClassVar[str | None] = None
    query_only_attribute: ClassVar[str | None] = None
    # Schemas of the trait's proactive notification and follow-up payloads, where it has them.
    notification_schema: ClassVar[JsonSchema | None] = None
    follow_up_schema: ClassVar[JsonSchema | None] = None

    commands: ClassVar[dict[str, Command]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.commands = {
            marked._command.name: marked._command
            for marked in vars(cls).values()
            if callable(marked) and hasattr(marked, "_command")
        }

    @classmethod
    def full_name(cls) -> str:
        return TRAIT_PREFIX + cls.name

    @classmethod
    def is_long_running(cls, command_name: str) -> bool:
        """Whether `command_name` (full name) is one the device completes later: for a device whose own cloud
        carries out its commands (backend "pubsub" or "webhook") it answers PENDING, and the state changes when the
        device reports it. Google's Cloud-to-cloud release notes of 2026-08-12 name opening/closing, locking,
        starting/stopping, cooking, dispensing and docking; network speed tests complete later by their nature."""
        spec = cls.commands.get(command_name)
        return spec is not None and spec.long_running

    # Attributes

    @classmethod
    def attribute_keys(cls) -> frozenset[str]:
        return frozenset(cls.attributes_schema.get("properties", {}))

    @classmethod
    def explicit_attributes(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """This trait's attributes with the command-only / query-only pair spelled out once either is given.

        Google's schemas read a missing switch of the pair as "not false" (their if/then rules apply when the
        other key is absent), so SYNC always carries both.
        """
        own = {key: value for key, value in attributes.items() if key in cls.attribute_keys()}
        pair = [key for key in (cls.command_only_attribute, cls.query_only_attribute) if key]
        if len(pair) == 2 and any(key in own for key in pair):
            for key in pair:
                own.setdefault(key, False)
        return own

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        """Problems with this trait's share of a device's attributes, each naming the trait and the field."""
        own = {key: value for key, value in attributes.items() if key in cls.attribute_keys()}
        return schema_errors(cls.attributes_schema, own, f"attributes ({cls.name})")

    # States

    @classmethod
    def state_keys(cls, attributes: Mapping[str, Any]) -> frozenset[str]:
        """The state keys this trait reports for a device with these attributes (none when command-only)."""
        if cls.command_only_attribute and attributes.get(cls.command_only_attribute) is True:
            return frozenset()
        return frozenset(cls.states_schema.get("properties", {}))

    @classmethod
    def state_errors(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
        own = {key: value for key, value in state.items() if key in cls.state_keys(attributes)}
        return schema_errors(cls.states_schema, own, f"state ({cls.name})")

    @classmethod
    def query_states(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        """The states Google gets in QUERY and Report State for this trait."""
        keys = cls.state_keys(attributes)
        return {key: value for key, value in state.items() if key in keys}

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """State of a newly registered device that was given none; traits override where a default makes sense."""
        return {}

    @classmethod
    def normalize_state(
        cls, attributes: Mapping[str, Any], merged: dict[str, Any], changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The merged state after this trait's implied rules (by default: `merged` unchanged).

        A partial report merged into the stored state can combine keys that Google's states schema says cannot
        come together (a jammed lock with its old `isLocked`); the trait applies what the report implies instead
        of the state being refused. `merged` is the device's whole state after the merge (no None values), and
        `changes` the keys just reported (a None value: the key was removed), so that the newest report wins. An
        override changes only its own keys, returns a new dict, and leaves what it cannot decide to validation.
        The rules are listed in docs/state-rules.md.
        """
        return merged

    # Commands

    def execute(self, ctx: CommandContext) -> Effect:
        spec = self.commands.get(ctx.command)
        if spec is None:
            raise errors.CommandError(errors.FUNCTION_NOT_SUPPORTED, f"{ctx.command} is not a {self.name} command")
        if self.query_only_attribute and ctx.attributes.get(self.query_only_attribute) is True:
            raise errors.CommandError(errors.FUNCTION_NOT_SUPPORTED, f"{self.name} is query-only on this device")
        problems = schema_errors(spec.params_schema, dict(ctx.params), "params")
        if problems:
            raise errors.CommandError(errors.PROTOCOL_ERROR, "; ".join(problems))
        outcome = spec.handler(self, ctx)
        return outcome if isinstance(outcome, Effect) else Effect(state=dict(outcome))

    # Report State hooks: the reporting pipeline (functions/reporting/planning.py) calls these on whichever
    # trait is concerned, never by the trait's name. Each payload is keyed by the trait's short name, as
    # Google's `payload.devices.notifications.<device id>` expects.

    @classmethod
    def sends_follow_ups(cls) -> bool:
        """Whether a command of this trait that answered PENDING is completed by a follow-up response.

        A trait says so by declaring the follow-up's schema (`follow_up_schema`) and overriding
        `follow_up_payload`.
        """
        return cls.follow_up_schema is not None

    @classmethod
    def follow_up_payload(
        cls, token: str, params: Mapping[str, Any], state: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The follow-up response once a pending command completed without the device reporting an error.

        `params` are the command's, `state` the device's state once the device cloud reported the outcome: the
        trait decides from it whether the command succeeded (SUCCESS with the values reached) or not (a
        `follow_up_failure`). None: this trait sends no follow-up responses (the default).
        """
        return None

    @classmethod
    def follow_up_failure(cls, token: str, code: str) -> dict[str, Any]:
        """The FAILURE follow-up response with Google's error `code` (e.g. lockFailure, deviceJammingDetected).

        The same for every trait that sends follow-ups; a trait whose failure carries more overrides it.
        """
        return cls.follow_up_response({"status": "FAILURE", "errorCode": code, "followUpToken": token})

    @classmethod
    def follow_up_response(cls, body: dict[str, Any]) -> dict[str, Any]:
        """`body` (status, followUpToken, and the values or errorCode) as this trait's share of a notification."""
        return {cls.name: {"priority": 0, "followUpResponse": body}}

    @classmethod
    def completion_notification(cls, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any] | None:
        """The proactive notification that a change of this trait's state from `before` to `after` implies by
        itself (a washer whose run ended announces that it finished), or None: by default, none."""
        return None


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def require_range(value: float, low: float, high: float, what: str) -> None:
    """Absolute values outside the device's range are refused (relative ones are clamped by their handlers)."""
    if not low <= value <= high:
        raise errors.CommandError(errors.VALUE_OUT_OF_RANGE, f"{what} {value} is outside {low}..{high}")
