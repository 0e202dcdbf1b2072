"""Two-factor challenges (Google's "secondary user verification") on EXECUTE: acknowledgement or PIN.

A device's `challenges` field (in its document, never sent to Google) says which commands need what:

    {"LockUnlock": {"type": "pin", "when": {"lock": false}},
     "action.devices.commands.OnOff": [{"type": "none", "when": {"on": true}}, {"type": "ack"}]}

Keys are command names, short or full. A value is one rule or a list of rules; the first rule whose `when` matches
the command's params decides. A rule's `type` is `none`, `ack` (the user confirms), `pin` (the user speaks the
device's PIN; refused while no PIN is set) or `pinOrAck` (the PIN once one is set, a confirmation until then).
`when` maps param names to a value the param must equal, or to one comparison: {"eq"|"ne"|"gt"|"gte"|"lt"|"lte": v}
or {"in": [v, ...]}; a rule without `when` matches every call. A command the config names follows the config
alone; the others follow DEFAULT_RULES.

PINs live hashed (argon2) in a store of their own, never in the device document. After MAX_FAILED_ATTEMPTS wrong
PINs in a row the device refuses PINs with `tooManyFailedAttempts` until the lockout window has passed; every
attempt is counted atomically before its PIN is checked, so concurrent guesses cannot slip past the limit.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from functions.core import traits as trait_registry
from functions.core.errors import ChallengeNeeded, CommandError
from functions.core.traits.base import COMMAND_PREFIX

if TYPE_CHECKING:
    from functions.core.commands import Execution
    from functions.core.device import Device
    from functions.core.traits.base import Trait

log = logging.getLogger(__name__)

# Rule types.
NONE = "none"
ACK = "ack"
PIN = "pin"
PIN_OR_ACK = "pinOrAck"
RULE_TYPES = (NONE, ACK, PIN, PIN_OR_ACK)

# What Google gets back (challengeNeeded.type), and the device error codes of platform/errors.schema.json.
ACK_NEEDED = "ackNeeded"
PIN_NEEDED = "pinNeeded"
CHALLENGE_FAILED_PIN_NEEDED = "challengeFailedPinNeeded"
TOO_MANY_FAILED_ATTEMPTS = "tooManyFailedAttempts"
SECURITY_RESTRICTION = "securityRestriction"

MAX_FAILED_ATTEMPTS = 5
DEFAULT_LOCKOUT_SECONDS = 15 * 60
# Spoken PINs: digits only; four at least, as on a phone or a keypad.
PIN_PATTERN = re.compile(r"[0-9]{4,12}")
MAX_RULES_PER_COMMAND = 20

_OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
_ORDERED = {"gt", "gte", "lt", "lte"}


@dataclass(frozen=True)
class Rule:
    type: str
    when: Mapping[str, Any]

    def matches(self, params: Mapping[str, Any]) -> bool:
        return all(name in params and _holds(condition, params[name]) for name, condition in self.when.items())


def _holds(condition: Any, value: Any) -> bool:
    if not isinstance(condition, Mapping):
        return _equal(value, condition)
    ((operator, operand),) = condition.items()
    if operator == "eq":
        return _equal(value, operand)
    if operator == "ne":
        return not _equal(value, operand)
    if operator == "in":
        return any(_equal(value, item) for item in operand)
    if not _is_number(value):
        return False
    if operator == "gt":
        return bool(value > operand)
    if operator == "gte":
        return bool(value >= operand)
    if operator == "lt":
        return bool(value < operand)
    return bool(value <= operand)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(first: Any, second: Any) -> bool:
    # JSON's true is not 1: a boolean equals only a boolean.
    if isinstance(first, bool) or isinstance(second, bool):
        return isinstance(first, bool) and isinstance(second, bool) and first is second
    return bool(first == second)


# Careful defaults: opening something that keeps people out needs the user's say-so, and the PIN once one is set.
_OPENING_TYPES = frozenset({"action.devices.types.GARAGE", "action.devices.types.GATE"})
DEFAULT_RULES: dict[str, tuple[Rule, ...]] = {
    COMMAND_PREFIX + "LockUnlock": (Rule(PIN_OR_ACK, {"lock": False}),),
    COMMAND_PREFIX + "ArmDisarm": (Rule(PIN_OR_ACK, {"arm": False}), Rule(PIN_OR_ACK, {"cancel": True})),
}
_OPENING_RULES: dict[str, tuple[Rule, ...]] = {
    COMMAND_PREFIX + "OpenClose": (Rule(PIN_OR_ACK, {"openPercent": {"gt": 0}}),),
    COMMAND_PREFIX + "OpenCloseRelative": (Rule(PIN_OR_ACK, {"openRelativePercent": {"gt": 0}}),),
}


def default_rules(device_type: str, command: str) -> tuple[Rule, ...]:
    if device_type in _OPENING_TYPES and command in _OPENING_RULES:
        return _OPENING_RULES[command]
    return DEFAULT_RULES.get(command, ())


def full_command_name(name: str) -> str:
    return name if name.startswith(COMMAND_PREFIX) else COMMAND_PREFIX + name


def rules_for(device_type: str, config: Mapping[str, Any] | None, command: str) -> tuple[Rule, ...]:
    """The rules of `command` on a device: its own config where it names the command, the defaults otherwise."""
    for key, value in (config or {}).items():
        if full_command_name(key) == command:
            items = value if isinstance(value, list) else [value]
            return tuple(Rule(str(item["type"]), dict(item.get("when") or {})) for item in items)
    return default_rules(device_type, command)


def required(device_type: str, config: Mapping[str, Any] | None, command: str, params: Mapping[str, Any]) -> str:
    """The challenge a command needs: one of RULE_TYPES (`none` when no rule matches)."""
    for rule in rules_for(device_type, config, command):
        if rule.matches(params):
            return rule.type
    return NONE


# Validation of a device's `challenges` field, naming every problem.


def config_problems(config: Any, device_traits: Sequence[Trait]) -> list[str]:
    if not isinstance(config, Mapping):
        return ["challenges: must be an object of command names to rules"]
    problems: list[str] = []
    commands = {name: trait for trait in device_traits for name in trait.commands}
    seen: set[str] = set()
    for key, value in config.items():
        where = f"challenges.{key}"
        command = full_command_name(str(key))
        if command not in commands:
            known = trait_registry.for_command(command) is not None
            reason = "is not a command of this device's traits" if known else "is not a command Google defines"
            problems.append(f"{where}: {key!r} {reason}")
            continue
        if command in seen:
            problems.append(f"{where}: {command} is configured twice")
            continue
        seen.add(command)
        params = set(commands[command].commands[command].params_schema.get("properties", {})) - {"followUpToken"}
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_RULES_PER_COMMAND:
            problems.append(f"{where}: at most {MAX_RULES_PER_COMMAND} rules")
            continue
        for index, item in enumerate(items):
            at = f"{where}[{index}]" if isinstance(value, list) else where
            problems.extend(_rule_problems(item, at, command, params))
    return problems


def _rule_problems(rule: Any, where: str, command: str, params: set[str]) -> list[str]:
    if not isinstance(rule, Mapping):
        return [f"{where}: a rule must be an object with a type"]
    problems = [f"{where}.{key}: unknown key (a rule has type and when)" for key in rule if key not in ("type", "when")]
    if rule.get("type") not in RULE_TYPES:
        problems.append(f"{where}.type: must be one of {', '.join(RULE_TYPES)}")
    when = rule.get("when", {})
    if not isinstance(when, Mapping):
        return [*problems, f"{where}.when: must be an object of param names to conditions"]
    for name, condition in when.items():
        if name not in params:
            problems.append(f"{where}.when.{name}: not a param of {command}")
        else:
            problems.extend(_condition_problems(condition, f"{where}.when.{name}"))
    return problems


def _condition_problems(condition: Any, where: str) -> list[str]:
    if not isinstance(condition, Mapping):
        return [] if _is_json_scalar(condition) else [f"{where}: compare with a string, number, boolean or null"]
    if len(condition) != 1 or next(iter(condition)) not in _OPERATORS:
        return [f"{where}: a comparison is one of {{{', '.join(_OPERATORS)}: value}}"]
    ((operator, operand),) = condition.items()
    if operator in _ORDERED and not _is_number(operand):
        return [f"{where}.{operator}: must be a number"]
    if operator == "in" and not (isinstance(operand, list) and operand):
        return [f"{where}.in: must be a non-empty list"]
    return []


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


def pin_problem(pin: str) -> str | None:
    if not PIN_PATTERN.fullmatch(pin):
        return "a PIN is 4 to 12 digits"
    return None


# Ports


@dataclass(frozen=True)
class PinRecord:
    """A device's PIN as stored: its slow hash and the count of wrong attempts in a row."""

    pin_hash: str
    failures: int = 0
    last_attempt_ms: int = 0
    version: Any = None  # opaque; a precondition for resetting an expired lockout


class PinStore(Protocol):
    def get(self, agent_user_id: str, device_id: str) -> PinRecord | None: ...

    def count_attempt(self, agent_user_id: str, device_id: str, now_ms: int) -> int | None:
        """Atomically adds one to the failure count (a PIN attempt counts as wrong until it proves right) and
        records the time; returns the count after, or None if the device has no PIN."""
        ...

    def clear_failures(self, agent_user_id: str, device_id: str) -> None: ...

    def reset_if_unchanged(self, agent_user_id: str, device_id: str, version: Any) -> bool:
        """Sets the failure count to 0 unless the record changed since it was read (False then)."""
        ...

    def set_pin(self, agent_user_id: str, device_id: str, pin_hash: str, now_ms: int) -> None: ...

    def remove_pin(self, agent_user_id: str, device_id: str) -> bool: ...


class PinHasher(Protocol):
    def hash(self, pin: str) -> str: ...

    def verify(self, pin_hash: str, pin: str) -> bool: ...


def is_locked(record: PinRecord, now_ms: int, lockout_ms: int) -> bool:
    return record.failures >= MAX_FAILED_ATTEMPTS and now_ms < record.last_attempt_ms + lockout_ms


class Challenges:
    """The fulfillment's ChallengeGate: raises ChallengeNeeded or CommandError unless the command may run."""

    # A request whose state write collides is planned again; its PIN attempts are not counted twice.
    _MEMO_SIZE = 256

    def __init__(
        self,
        pins: PinStore,
        hasher_factory: Callable[[], PinHasher],
        lockout_ms: Callable[[], int] = lambda: DEFAULT_LOCKOUT_SECONDS * 1000,
    ) -> None:
        self._pins = pins
        # A factory, so that the hashing library is loaded only when a PIN is actually checked.
        self._hasher_factory = hasher_factory
        self._hasher: PinHasher | None = None
        self._lockout_ms = lockout_ms
        self._memo_lock = threading.Lock()
        # Weak references: the memo never keeps a request (and the PIN in it) alive.
        self._memo: OrderedDict[tuple[int, str], tuple[weakref.ref[Execution], Callable[[], Exception] | None]] = (
            OrderedDict()
        )

    def check(self, agent_user_id: str, device: Device, execution: Execution, now_ms: int) -> None:
        config = device.settings.get("challenges")
        need = required(
            device.type, config if isinstance(config, Mapping) else None, execution.command, execution.params
        )
        if need == NONE:
            return
        given = execution.challenge or {}
        if need == ACK:
            if given.get("ack") is not True:
                raise ChallengeNeeded(ACK_NEEDED)
            return
        record = self._pins.get(agent_user_id, device.id)
        if record is None:
            if need == PIN:
                raise CommandError(SECURITY_RESTRICTION, "this command needs a PIN and the device has none set")
            if given.get("ack") is not True:
                raise ChallengeNeeded(ACK_NEEDED)
            return
        self._check_pin(agent_user_id, device.id, record, execution, now_ms)

    def _check_pin(
        self, agent_user_id: str, device_id: str, record: PinRecord, execution: Execution, now_ms: int
    ) -> None:
        memo_key = (id(execution), device_id)
        with self._memo_lock:
            remembered = self._memo.get(memo_key)
        if remembered is not None and remembered[0]() is execution:
            if remembered[1] is not None:
                raise remembered[1]()
            return
        lockout_ms = self._lockout_ms()
        if is_locked(record, now_ms, lockout_ms):
            raise CommandError(TOO_MANY_FAILED_ATTEMPTS, "PIN attempts are locked out")
        pin = (execution.challenge or {}).get("pin")
        if not isinstance(pin, str) or not pin:
            raise ChallengeNeeded(PIN_NEEDED)
        if record.failures >= MAX_FAILED_ATTEMPTS and not self._pins.reset_if_unchanged(
            agent_user_id, device_id, record.version
        ):
            # Someone else touched the record since it was read: judge on what it says now.
            fresh = self._pins.get(agent_user_id, device_id)
            if fresh is None:
                raise CommandError(SECURITY_RESTRICTION, "the device's PIN was removed")
            self._check_pin(agent_user_id, device_id, fresh, execution, now_ms)
            return
        outcome: Exception | None = None
        try:
            self._attempt(agent_user_id, device_id, record, pin, now_ms)
        except (ChallengeNeeded, CommandError) as refused:
            outcome = refused
        # Only the outcome's kind and code are kept: an exception's traceback would hold the PIN's frame.
        with self._memo_lock:
            self._memo[memo_key] = (weakref.ref(execution), _outcome_copy(outcome))
            while len(self._memo) > self._MEMO_SIZE:
                self._memo.popitem(last=False)
        if outcome is not None:
            raise outcome

    def _attempt(self, agent_user_id: str, device_id: str, record: PinRecord, pin: str, now_ms: int) -> None:
        count = self._pins.count_attempt(agent_user_id, device_id, now_ms)
        if count is None:
            raise CommandError(SECURITY_RESTRICTION, "the device's PIN was removed")
        if count > MAX_FAILED_ATTEMPTS:
            # Concurrent attempts got to the limit first: this one is not even checked.
            raise CommandError(TOO_MANY_FAILED_ATTEMPTS, "PIN attempts are locked out")
        if pin_problem(pin) is None:
            if self._hasher is None:
                self._hasher = self._hasher_factory()
            right = self._hasher.verify(record.pin_hash, pin)
        else:
            right = False  # cannot be the PIN: counted as a wrong guess without spending a slow hash on it
        if right:
            self._pins.clear_failures(agent_user_id, device_id)
            return
        # Never the PIN itself: who, which device, how many in a row.
        where = {"agentUserId": agent_user_id, "deviceId": device_id, "failures": count}
        if count == MAX_FAILED_ATTEMPTS:
            log.warning("wrong PIN: PIN attempts locked out", extra=where)
            raise CommandError(TOO_MANY_FAILED_ATTEMPTS, f"{MAX_FAILED_ATTEMPTS} wrong PINs in a row")
        log.info("wrong PIN", extra=where)
        raise ChallengeNeeded(CHALLENGE_FAILED_PIN_NEEDED)


def _outcome_copy(outcome: Exception | None) -> Callable[[], Exception] | None:
    if isinstance(outcome, ChallengeNeeded):
        challenge_type, code = outcome.challenge_type, outcome.code
        return lambda: ChallengeNeeded(challenge_type, code)
    if isinstance(outcome, CommandError):
        error_code, debug = outcome.code, outcome.debug
        return lambda: CommandError(error_code, debug)
    return None
