"""`devices pin` and `devices challenges`: a device's PIN and which of its commands need a two-factor challenge.

    python -m functions devices pin --user U --id D             # asks for the PIN twice (or reads a line of stdin)
    python -m functions devices pin --user U --id D --remove    # back to acknowledgements for pinOrAck rules
    python -m functions devices pin --user U --id D --unlock    # lifts a lockout after too many wrong PINs
    python -m functions devices challenges --user U --id D --file rules.json   # or - for stdin
    python -m functions devices challenges --user U --id D --clear             # back to the defaults
    python -m functions devices challenges --user U --id D --show              # rules in force, PIN status

The PIN is never printed, logged or stored: only its argon2id hash is kept, apart from the device document.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from functions.core import challenges as policy
from functions.core.device import parse_device
from functions.core.errors import InvalidDevice
from functions.platform import config
from tools.cli import UNCHECKED, Refused, _read_json, _registry, no_device


def _now_ms() -> int:
    return int(time.time() * 1000)


def _pin_store() -> Any:
    from functions.fulfillment.pin_store import FirestorePinStore

    return FirestorePinStore()


def _existing_device(user: str, device_id: str) -> dict[str, Any]:
    document = _registry().get(user, device_id)
    if document is None:
        raise no_device(user, device_id)
    return dict(document)


def _read_pin() -> str:
    if sys.stdin.isatty():
        pin = getpass.getpass("New PIN (4 to 12 digits): ")
        if getpass.getpass("Repeat the PIN: ") != pin:
            raise Refused("the two PINs differ; nothing written")
    else:
        pin = sys.stdin.readline().rstrip("\r\n")
    problem = policy.pin_problem(pin)
    if problem:
        raise Refused(f"{problem}; nothing written")
    return pin


def devices_pin(args: argparse.Namespace) -> int:
    _existing_device(args.user, args.id)
    store = _pin_store()
    if args.remove:
        if not store.remove_pin(args.user, args.id):
            raise Refused(f"device {args.id!r} has no PIN")
        print(json.dumps({"id": args.id, "pin": "removed"}))
        return 0
    if args.unlock:
        if store.get(args.user, args.id) is None:
            raise Refused(f"device {args.id!r} has no PIN")
        store.clear_failures(args.user, args.id)
        print(json.dumps({"id": args.id, "pin": "unlocked"}))
        return 0
    pin = _read_pin()
    from functions.fulfillment.pin_hashing import Argon2PinHasher

    store.set_pin(args.user, args.id, Argon2PinHasher().hash(pin), _now_ms())
    print(json.dumps({"id": args.id, "pin": "set"}))
    return 0


def devices_challenges(args: argparse.Namespace) -> int:
    document = _existing_device(args.user, args.id)
    if args.show:
        return _show(args.user, args.id, document)
    registry = _registry()
    if args.clear:
        from google.cloud import firestore

        registry.update(args.user, args.id, {"challenges": firestore.DELETE_FIELD})
        print(json.dumps({"id": args.id, "challenges": "defaults"}))
        return 0
    rules = _read_json(args.file, sys.stdin)
    try:
        parse_device(args.id, {**document, "challenges": rules})
    except InvalidDevice as problem:
        raise Refused(f"refused, nothing written:\n  {problem}") from problem
    if _needs_a_pin(rules) and _pin_store().get(args.user, args.id) is None:
        raise Refused(
            f"a 'pin' rule needs the device's PIN: set it first (devices pin --user {args.user} --id {args.id}); "
            "nothing written"
        )
    if not registry.update(args.user, args.id, {"challenges": rules}):
        raise no_device(args.user, args.id)
    print(json.dumps({"id": args.id, "challenges": rules}))
    return 0


def _needs_a_pin(rules: Any) -> bool:
    values = rules.values() if isinstance(rules, dict) else []
    items = [item for value in values for item in (value if isinstance(value, list) else [value])]
    return any(isinstance(item, dict) and item.get("type") == policy.PIN for item in items)


def _show(user: str, device_id: str, document: dict[str, Any]) -> int:
    try:
        device = parse_device(device_id, document)
    except InvalidDevice as problem:
        raise Refused(str(problem)) from problem
    configured = device.settings.get("challenges") or {}
    in_force: dict[str, Any] = {}
    for trait in device.traits:
        for command in trait.commands:
            rules = policy.rules_for(device.type, configured, command)
            if rules:
                in_force[command] = [{"type": r.type, **({"when": dict(r.when)} if r.when else {})} for r in rules]
    record = _pin_store().get(user, device_id)
    lockout_ms = config.challenge_lockout_seconds() * 1000
    pin: dict[str, Any] = {"set": record is not None}
    if record is not None:
        pin["failures"] = record.failures
        pin["locked"] = policy.is_locked(record, _now_ms(), lockout_ms)
    print(json.dumps({"id": device_id, "configured": configured, "inForce": in_force, "pin": pin}, indent=2))
    return 0


def _devices_actions(groups: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """The sub-commands of the `devices` group that cli.py builds, to add ours beside add/list/remove."""
    devices = groups.choices["devices"]
    for action in devices._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the devices group has no sub-commands")


def register(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    actions = _devices_actions(groups)
    pin = actions.add_parser("pin", help="set, remove or unlock a device's PIN for two-factor challenges")
    pin.add_argument("--user", required=True, help="agentUserId")
    pin.add_argument("--id", required=True, help="device id")
    mode = pin.add_mutually_exclusive_group()
    mode.add_argument("--remove", action="store_true", help="remove the PIN")
    mode.add_argument("--unlock", action="store_true", help="forget wrong attempts and lift a lockout")
    pin.set_defaults(run=devices_pin, unknown_user=UNCHECKED)

    rules = actions.add_parser("challenges", help="which commands of a device need an acknowledgement or PIN")
    rules.add_argument("--user", required=True, help="agentUserId")
    rules.add_argument("--id", required=True, help="device id")
    what = rules.add_mutually_exclusive_group(required=True)
    what.add_argument("--file", help="JSON object of command names to rules, or - for stdin")
    what.add_argument("--clear", action="store_true", help="remove the device's rules: the defaults apply")
    what.add_argument("--show", action="store_true", help="print the rules in force and the PIN's status")
    rules.set_defaults(run=devices_challenges, unknown_user=UNCHECKED)
