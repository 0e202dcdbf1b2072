"""`python -m functions devices publish-state ...`: publish a state message, as a device cloud does.

    devices publish-state --user U --id D --states '{"on": true}' [--online true|false]
        [--command-id C [--error-code E]] [--notification-file F --event-id E] [--observed-at T]

The message is checked against the contract (functions/core/contracts/state-message.json) by the client for
device clouds (devicecloud/) and published on the state topic (STATE_TOPIC, default device-state): of the running
local stack's Pub/Sub emulator (found through its record, .local-stack/stack.json, as `google ...` does), or of
the project GOOGLE_CLOUD_PROJECT names, with your application-default credentials, when no stack runs or
PUBSUB_EMULATOR_HOST / GOOGLE_CLOUD_PROJECT are set. Prints the message id; exit code 1 for a refused message.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from functions.core import json_values
from tools.cli import Refused


def _use_stack_environment() -> None:
    """The running local stack's Pub/Sub emulator and project, unless the environment names a project already."""
    from tools.google_cli import stack

    if os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("PUBSUB_EMULATOR_HOST"):
        return
    env = stack().get("env", {})
    for name in ("PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
        if env.get(name):
            os.environ[name] = env[name]


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json_values.loads(text)
    except ValueError as problem:
        raise Refused(f"{what} is not valid JSON: {problem}") from problem
    if not isinstance(value, dict):
        raise Refused(f"{what} must be a JSON object")
    return value


def publish_state(args: argparse.Namespace) -> int:
    import devicecloud

    states = _json_object(args.states, "--states")
    notifications = None
    if args.notification_file:
        try:
            with open(args.notification_file, encoding="utf-8") as handle:
                notifications = _json_object(handle.read(), args.notification_file)
        except OSError as problem:
            raise Refused(f"cannot read {args.notification_file}: {problem.strerror}") from problem
    _use_stack_environment()
    cloud = devicecloud.DeviceCloud(state_topic=args.topic)
    if not cloud.project:
        raise Refused("no local stack runs (start it with `make up`), and GOOGLE_CLOUD_PROJECT is not set")
    try:
        message_id = cloud.publish_state(
            args.user,
            args.id,
            states,
            online=None if args.online is None else args.online == "true",
            observed_at=args.observed_at,
            notifications=notifications,
            event_id=args.event_id,
            command_id=args.command_id,
            error_code=args.error_code,
        )
    except devicecloud.InvalidStateMessage as invalid:
        raise Refused(f"not a valid state message, nothing published: {invalid}") from invalid
    print(json.dumps({"published": message_id, "topic": cloud.state_topic, "project": cloud.project}))
    return 0


def _devices_group(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> Any:
    """The sub-commands of `devices` (tools/cli.py builds the group)."""
    devices = groups.choices["devices"]
    return next(action for action in devices._actions if isinstance(action, argparse._SubParsersAction))


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    publish = _devices_group(groups).add_parser(
        "publish-state", help="publish a state message on the state topic, as a device cloud does"
    )
    publish.add_argument("--user", required=True, help="agentUserId")
    publish.add_argument("--id", required=True, help="the device id")
    publish.add_argument("--states", default="{}", help="JSON object of the new states, e.g. '{\"on\": true}'")
    publish.add_argument("--online", choices=("true", "false"))
    publish.add_argument("--observed-at", help="RFC 3339 (default now)")
    publish.add_argument("--command-id", help="completes this command (from the commands topic or a webhook call)")
    publish.add_argument("--error-code", help="with --command-id: it failed, with this code of Google's")
    publish.add_argument("--notification-file", help="JSON file of the notifications, keyed by trait")
    publish.add_argument("--event-id", help="with --notification-file: the event it announces")
    publish.add_argument("--topic", help="the state topic (default STATE_TOPIC, or device-state)")
    # It finds the stack's Pub/Sub emulator itself, and needs no Firestore (tools/cli.py's checks are for that).
    publish.set_defaults(run=publish_state, uses_project=False)
