"""Operators' command line: `python -m functions devices|token|users|clients|google|homegraph ...`.

Reads GOOGLE_CLOUD_PROJECT and FIRESTORE_EMULATOR_HOST like the functions do; where the environment names neither,
it acts on the running local stack (`make up`, found through its record), and with no stack either it refuses to
guess a project (tools/local_stack.py). A command naming a user (--user) who has neither devices nor an account is
refused as a likely typo, unless --create says the user is new. Exit codes: 0 done, 1 refused (invalid input,
unknown device or user, nowhere to act), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from functions.core import json_values, tokens
from functions.core.device import device_id_problem, new_device_document, parse_device
from functions.core.errors import InvalidDevice
from tools import local_stack

# Modules that add sub-command groups of their own (users, clients, google, ...): each has
# `register(groups: argparse._SubParsersAction) -> None`. Imported only when the parser is built.
EXTENSION_MODULES: tuple[str, ...] = (
    "tools.cli_challenges",
    "tools.cli_linking",
    "tools.cli_homegraph",
    "tools.google_cli",
    "tools.certify",  # adds `google certify` to the group tools.google_cli registers
    "tools.devicecloud",
    "tools.vitals",
)


class Refused(Exception):
    """Invalid input: reported on stderr with exit code 1; nothing was written."""


# How a command treats a --user with neither devices nor an account (`set_defaults(unknown_user=...)`):
REFUSE = "refuse"  # refused before the command runs, unless --create (the default for every command with --user)
CHECKED_BY_COMMAND = "command"  # the command calls require_known_user itself, after checking its input
NOTE = "note"  # a read: it runs, with a note on stderr
UNCHECKED = "unchecked"  # the command's own refusal names the user (see no_device)
CREATE_HELP = "the user is new: go on although it has neither devices nor an account"
DEMO_USER = "demo"  # set_defaults(user_default=DEMO_USER): no --user means the running stack's demo user


def require_known_user(args: argparse.Namespace) -> None:
    if not getattr(args, "create", False) and not local_stack.user_is_known(args.user):
        raise Refused(local_stack.unknown_user_message(args.user))


def no_device(user: str, device_id: str) -> Refused:
    """The refusal for a device that is not there, saying so when the user is not there either."""
    message = f"no device {device_id!r} for user {user!r}"
    if not local_stack.user_is_known(user):
        message += f" ({user!r} has neither devices nor an account: a typo?)"
    return Refused(message)


def _now_ms() -> int:
    return int(time.time() * 1000)


def iso_or_text(value: Any) -> str:
    """JSON for what is not: Firestore's timestamps as ISO 8601 (like every time the tools print), else text."""
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()).replace("+00:00", "Z") if callable(isoformat) else str(value)


def _read_json(path: str, stdin: TextIO) -> Any:
    try:
        text = stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    except OSError as problem:
        raise Refused(f"cannot read {path}: {problem.strerror}") from problem
    try:
        return json_values.loads(text)
    except ValueError as problem:
        raise Refused(f"{path} is not valid JSON: {problem}") from problem


def validated_devices(submitted: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every submitted device validated before anything is written; all problems reported together."""
    items = submitted if isinstance(submitted, list) else [submitted]
    if not items:
        raise Refused("no device given")
    documents: list[tuple[str, dict[str, Any]]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"device #{index}: must be a JSON object")
            continue
        device_id = item.get("id")
        id_problem = device_id_problem(device_id)
        if id_problem:
            problems.append(f"device #{index}: {id_problem}")
            continue
        assert isinstance(device_id, str)
        if device_id in seen:
            problems.append(f"device {device_id!r}: given twice")
            continue
        seen.add(device_id)
        try:
            documents.append((device_id, new_device_document(device_id, item)))
        except InvalidDevice as problem:
            problems.append(str(problem))
    if problems:
        raise Refused("refused, nothing written:\n  " + "\n  ".join(problems))
    return documents


def _registry() -> Any:
    from functions.fulfillment.store import FirestoreDeviceRegistry

    return FirestoreDeviceRegistry()


def devices_add(args: argparse.Namespace) -> int:
    from functions.fulfillment.store import DeviceExists

    documents = validated_devices(_read_json(args.file, sys.stdin))
    require_known_user(args)
    try:
        _registry().add(args.user, documents, replace=args.replace)
    except DeviceExists as exists:
        raise Refused(f"already registered (use --replace): {exists}; nothing written") from exists
    print(json.dumps({"added": [device_id for device_id, _ in documents]}))
    return 0


def devices_list(args: argparse.Namespace) -> int:
    listed = [{"id": device_id, **document} for device_id, document in sorted(_registry().list(args.user))]
    print(json.dumps(listed, indent=2, sort_keys=True, default=iso_or_text))
    return 0


def devices_remove(args: argparse.Namespace) -> int:
    if not _registry().remove(args.user, args.id):
        raise no_device(args.user, args.id)
    print(json.dumps({"removed": args.id}))
    return 0


def devices_rename(args: argparse.Namespace) -> int:
    if not args.name.strip():
        raise Refused("the name may not be empty")
    if not _registry().update(args.user, args.id, {"name.name": args.name}):
        raise no_device(args.user, args.id)
    print(json.dumps({"renamed": args.id, "name": args.name}))
    return 0


def devices_set_state(args: argparse.Namespace) -> int:
    """Changes a device's state (and/or online) as a device cloud would: validated against its traits first."""
    try:
        changes = json_values.loads(args.state) if args.state is not None else {}
    except ValueError as problem:
        raise Refused(f"--state is not valid JSON: {problem}") from problem
    if not isinstance(changes, dict) or (not changes and args.online is None):
        raise Refused("give --state as a non-empty JSON object, or --online")
    registry = _registry()
    document = registry.get(args.user, args.id)
    if document is None:
        raise no_device(args.user, args.id)
    updated = {**document, "state": {**(document.get("state") or {}), **changes}}
    if args.online is not None:
        updated["online"] = args.online == "true"
    try:
        parse_device(args.id, updated)
    except InvalidDevice as problem:
        raise Refused(f"refused, nothing written: {problem}") from problem
    registry.update(args.user, args.id, {"state": updated["state"], "online": updated.get("online", True)})
    print(json.dumps({"updated": args.id, "state": updated["state"], "online": updated.get("online", True)}))
    return 0


def token_issue(args: argparse.Namespace) -> int:
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.platform.firestore import FirestoreTokenStore

    if args.ttl <= 0:
        raise Refused("--ttl must be positive")
    require_known_user(args)
    now = _now_ms()
    token = tokens.issue(FirestoreTokenStore(), tokens.ACCESS, args.user, args.ttl, now)
    FirestoreFulfillmentStore().mark_linked(args.user, now)
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m functions", description=__doc__.split("\n\n")[0])
    groups = parser.add_subparsers(dest="group", required=True)

    devices = groups.add_parser("devices", help="register and manage a user's devices").add_subparsers(
        dest="action", required=True
    )
    add = devices.add_parser("add", help="register devices from a JSON file (a device object or an array)")
    add.add_argument("--user", required=True, help="agentUserId")
    add.add_argument("--file", required=True, help="JSON file, or - for stdin")
    add.add_argument("--replace", action="store_true", help="overwrite devices that already exist")
    add.set_defaults(run=devices_add, unknown_user=CHECKED_BY_COMMAND)
    listing = devices.add_parser("list", help="print the user's devices as JSON")
    listing.add_argument("--user", required=True)
    listing.set_defaults(run=devices_list, unknown_user=NOTE)
    remove = devices.add_parser("remove", help="remove a device")
    remove.add_argument("--user", required=True)
    remove.add_argument("--id", required=True)
    remove.set_defaults(run=devices_remove, unknown_user=UNCHECKED)
    rename = devices.add_parser("rename", help="rename a device")
    rename.add_argument("--user", required=True)
    rename.add_argument("--id", required=True)
    rename.add_argument("--name", required=True)
    rename.set_defaults(run=devices_rename, unknown_user=UNCHECKED)
    set_state = devices.add_parser("set-state", help="change a device's state (validated), as its device cloud would")
    set_state.add_argument("--user", required=True)
    set_state.add_argument("--id", required=True)
    set_state.add_argument("--state", help="JSON object of state changes, e.g. '{\"on\": true}'")
    set_state.add_argument("--online", choices=("true", "false"))
    set_state.set_defaults(run=devices_set_state, unknown_user=UNCHECKED)

    token = groups.add_parser("token", help="access tokens").add_subparsers(dest="action", required=True)
    issue = token.add_parser("issue", help="issue an access token for a user; prints it alone on stdout")
    issue.add_argument("--user", required=True)
    issue.add_argument("--ttl", type=int, default=tokens.ACCESS_TOKEN_TTL_S, help="seconds (default 3600)")
    issue.set_defaults(run=token_issue, unknown_user=CHECKED_BY_COMMAND)

    for module_name in EXTENSION_MODULES:
        importlib.import_module(module_name).register(groups)
    _offer_create(parser)
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser that runs a command (the leaves of the sub-command tree)."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _commands(child)
            return found
    return [parser]


def _offer_create(parser: argparse.ArgumentParser) -> None:
    """--create on every command with a --user that refuses an unknown user (any module's, so that the command
    modules need not add it each)."""
    for command in _commands(parser):
        takes_user = "--user" in command._option_string_actions
        mode = command.get_default("unknown_user") or REFUSE
        if takes_user and mode in (REFUSE, CHECKED_BY_COMMAND) and "--create" not in command._option_string_actions:
            command.add_argument("--create", action="store_true", help=CREATE_HELP)


def _prepare(args: argparse.Namespace) -> None:
    """Where the command acts (the environment, else the running stack), then the check of its --user."""
    if getattr(args, "user_default", None) == DEMO_USER and getattr(args, "user", "") is None:
        args.user = local_stack.demo_user()
        if args.user is None:
            raise Refused("--user is needed: no local stack runs, whose demo user is the default")
    uses_project = getattr(args, "uses_project", True)
    if not (uses_project(args) if callable(uses_project) else uses_project):
        return
    local_stack.point_at_stack()
    user = getattr(args, "user", None)
    mode = getattr(args, "unknown_user", None) or REFUSE
    if not isinstance(user, str) or mode not in (REFUSE, NOTE):
        return
    if mode == REFUSE:
        require_known_user(args)
    elif not local_stack.user_is_known(user):
        local_stack.print_note(f"{user!r} has neither devices nor an account (a typo?)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _prepare(args)
        return int(args.run(args))
    except (Refused, local_stack.StackProblem) as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    except Exception as problem:
        # Google's client libraries: no credentials, or a service that does not answer. One line, not a trace.
        if not type(problem).__module__.startswith(("google.auth", "google.api_core")):
            raise
        first_line = (str(problem).strip().splitlines() or [""])[0][:300]
        print(f"error: {type(problem).__name__}: {first_line}", file=sys.stderr)
        return 1
