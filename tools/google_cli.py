"""`python -m functions google ...`: play Google Home against a fulfillment, and read what the HomeGraph stand-in holds.

    google sync                                  SYNC, as Google sends it after linking and on Request Sync
    google query [--id D ...]                    QUERY (no --id: every device the user's SYNC lists)
    google execute --id D [--id D ...] --command OnOff --params '{"on": true}' [--ack | --pin PIN]
                   [--follow-up-token T]
    google disconnect                            DISCONNECT, as when the user unlinks (Google forgets them)
    google link                                  the user links: the stand-in knows them and runs SYNC, QUERY
    google state                                 the devices and states the HomeGraph stand-in holds
    google calls [--method M] [--body]           what reached the stand-in, and what it sent (times in ISO 8601)
    google notifications                         the notifications and follow-ups HomeGraph received

Each takes --user U (an agentUserId); without it, the running local stack's demo user (calls and notifications:
every user's). Against the running local stack (`make up`, found through .local-stack/stack.json), the intents go
through the HomeGraph stand-in, which sends them with the user's token as Google would, records them beside every
other call (`google calls`, the Google Home page) and keeps its view in step: a SYNC updates the devices Google
knows, a DISCONNECT unlinks the user and drops their token, and a link gets a new one. With --url (another
fulfillment) or --token, requests go straight to the fulfillment, with --token or a token minted in Firestore the
way account linking stores them. Exit codes: 0 the fulfillment answered 200 with no error (for the request, a
command or a device), 1 otherwise (the answer is still printed), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from functions.core import json_values
from tools import google, local_stack
from tools.cli import DEMO_USER, NOTE, Refused

TOKEN_TTL_S = 3600
TIMEOUT_S = 60  # a SYNC of a few hundred devices, or a QUERY behind a slow emulator, well within it


def token_cache() -> Path:
    return local_stack.state_dir() / "google-tokens.json"


def stack() -> dict[str, Any]:
    """What the running local stack wrote: {"pid", "urls": {...}, "env": {...}}; {} when none runs."""
    return local_stack.running() or {}


def _stack_url(explicit: str | None, name: str, option: str) -> str:
    if explicit:
        return explicit.rstrip("/")
    url = stack().get("urls", {}).get(name)
    if not url:
        raise Refused(f"no local stack runs (start it with `make up`), and no {option} was given")
    return str(url).rstrip("/")


def _through_standin(args: argparse.Namespace) -> bool:
    """Intents go through the stand-in (as Google) unless another fulfillment or a token of one's own is given."""
    return not args.url and not args.token


def access_token(user: str, explicit: str | None) -> str:
    """--token, or one minted in the Firestore the environment (or the stack) names; emulator tokens are kept."""
    if explicit:
        return explicit
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST", "")
    key = f"{os.environ.get('GOOGLE_CLOUD_PROJECT', '')}|{emulator}|{user}"
    cache: dict[str, Any] = {}
    if emulator:  # only emulator tokens are kept on disk; a real project's are minted each time
        try:
            cache = json.loads(token_cache().read_text())
        except (OSError, ValueError):
            cache = {}
        cached = cache.get(key)
        if cached and cached["expiresAt"] > time.time() + 60:
            return str(cached["token"])

    from functions.core import tokens
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.platform.firestore import FirestoreTokenStore

    now_ms = int(time.time() * 1000)
    token = tokens.issue(FirestoreTokenStore(), tokens.ACCESS, user, TOKEN_TTL_S, now_ms)
    FirestoreFulfillmentStore().mark_linked(user, now_ms)
    if emulator:
        cache[key] = {"token": token, "expiresAt": time.time() + TOKEN_TTL_S}
        token_cache().parent.mkdir(parents=True, exist_ok=True)
        token_cache().write_text(json.dumps(cache))
        token_cache().chmod(0o600)
    return token


def http_json(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """(status, JSON body, or its text when it is not JSON) of one call; Refused when nothing answers."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - given URL
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except OSError as problem:
        raise Refused(f"{url} did not answer: {problem}") from problem
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def _user_path(user: str) -> str:
    return urllib.parse.quote(user, safe="")


def send(args: argparse.Namespace, request: dict[str, Any]) -> tuple[int, Any]:
    """The fulfillment's (status, answer): through the stand-in of the local stack, or straight to --url."""
    if _through_standin(args):
        url = f"{_stack_url(None, 'homegraph stand-in', '--url')}/standin/users/{_user_path(args.user)}:fulfill"
        status, body = http_json("POST", url, {"request": request, "caller": "cli"})
        if status != 200 or not isinstance(body, dict):
            raise Refused(f"the stand-in answered {status}: {body}")
        if body.get("status") is None:
            raise Refused(f"the fulfillment did not answer: {body.get('response')}")
        return int(body["status"]), body.get("response")
    url = _stack_url(args.url, "fulfillment", "--url")
    return http_json("POST", url, request, access_token(args.user, args.token))


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True) if not isinstance(value, str) else value)


def _answer(status: int, body: Any) -> int:
    """Prints the answer; 1 if it is not a 200, or Google would read an error in it (for the request, a command or
    a device)."""
    _print(body)
    payload = body.get("payload") if isinstance(body, dict) else None
    payload = payload if isinstance(payload, dict) else {}
    errors = [c for c in payload.get("commands", []) if isinstance(c, dict) and c.get("status") == "ERROR"]
    devices = payload.get("devices")
    if isinstance(devices, dict):
        errors += [d for d in devices.values() if isinstance(d, dict) and d.get("status") == "ERROR"]
    if status != 200 or payload.get("errorCode") or errors:
        print(f"fulfillment answered HTTP {status}" + (" with errors" if errors else ""), file=sys.stderr)
        return 1
    return 0


def sync(args: argparse.Namespace) -> int:
    return _answer(*send(args, google.sync_request()))


def query(args: argparse.Namespace) -> int:
    ids = args.id
    if not ids:
        status, body = send(args, google.sync_request())
        if status != 200:
            return _answer(status, body)
        ids = [device["id"] for device in body.get("payload", {}).get("devices", [])]
    return _answer(*send(args, google.query_request(ids)))


def execute(args: argparse.Namespace) -> int:
    try:
        params = json_values.loads(args.params)
    except ValueError as problem:
        raise Refused(f"--params is not JSON: {problem}") from problem
    if not isinstance(params, dict):
        raise Refused("--params must be a JSON object")
    request = google.command_request(
        args.id, args.command, params, ack=args.ack, pin=args.pin, follow_up_token=args.follow_up_token
    )
    return _answer(*send(args, request))


def disconnect(args: argparse.Namespace) -> int:
    status, body = send(args, google.disconnect_request())
    _forget_tokens(args.user)  # DISCONNECT revoked them
    return _answer(status, body)


def _forget_tokens(user: str) -> None:
    try:
        cache = json.loads(token_cache().read_text())
    except (OSError, ValueError):
        return
    token_cache().write_text(json.dumps({k: v for k, v in cache.items() if not k.endswith(f"|{user}")}))


def _standin(args: argparse.Namespace) -> str:
    return _stack_url(args.homegraph, "homegraph stand-in", "--homegraph")


def link(args: argparse.Namespace) -> int:
    status, body = http_json("POST", f"{_standin(args)}/standin/users/{_user_path(args.user)}:link", {"sync": True})
    if status != 200:
        raise Refused(f"the stand-in answered {status}: {body}")
    shown = {"agentUserId": args.user, "linked": body.get("linked"), "synced": body.get("synced")}
    if not body.get("synced"):
        shown["syncProblem"] = body.get("syncProblem")
        print(f"linked, but Google's SYNC failed: {body.get('syncProblem')}", file=sys.stderr)
    _print(shown)
    return 0 if body.get("synced") else 1


def state(args: argparse.Namespace) -> int:
    status, body = http_json("GET", f"{_standin(args)}/standin/users/{_user_path(args.user)}")
    if status == 404:
        raise Refused(f"HomeGraph (the stand-in) does not know {args.user!r}: link first (`google link`)")
    if status != 200:
        raise Refused(f"the stand-in answered {status}: {body}")
    if args.raw:
        _print(body)
        return 0
    states = body.get("states", {})
    _print(
        {
            "agentUserId": body["agentUserId"],
            "linked": body["linked"],
            "syncs": body["syncs"],
            "devices": {
                device["id"]: {
                    "name": device.get("name", {}).get("name"),
                    "type": device.get("type"),
                    "states": states.get(device["id"], {}),
                }
                for device in body.get("devices", [])
            },
        }
    )
    return 0


def shown_call(call: dict[str, Any], with_body: bool) -> dict[str, Any]:
    """A recorded call as `google calls` prints it: ISO times, its duration, the devices it is about."""
    from tools import home_page

    at, finished = call.get("at"), call.get("finishedAt")
    shown: dict[str, Any] = {
        "seq": call.get("seq"),
        "at": local_stack.iso_time(at),
        "method": call.get("method"),
        "agentUserId": call.get("agentUserId"),
        "devices": home_page.device_ids_of(call),
        "status": call.get("status"),
        "outcome": home_page.outcome_of(call),
        "ms": round((finished - at) * 1000) if isinstance(at, float) and isinstance(finished, float) else None,
        "caller": call.get("caller"),
    }
    for optional in ("reason", "error", "fault"):
        if call.get(optional) is not None:
            shown[optional] = call[optional]
    if with_body:
        shown["request"] = call.get("request")
        shown["response"] = call.get("response")
    return shown


def calls(args: argparse.Namespace) -> int:
    query_string = urllib.parse.urlencode({k: v for k, v in (("agentUserId", args.user), ("method", args.method)) if v})
    status, body = http_json("GET", f"{_standin(args)}/standin/calls?{query_string}")
    if status != 200:
        raise Refused(f"the stand-in answered {status}: {body}")
    _print([shown_call(call, args.body) for call in body["calls"][-args.last :]])
    return 0


def notifications(args: argparse.Namespace) -> int:
    query_string = urllib.parse.urlencode({"agentUserId": args.user} if args.user else {})
    status, body = http_json("GET", f"{_standin(args)}/standin/notifications?{query_string}")
    if status != 200:
        raise Refused(f"the stand-in answered {status}: {body}")
    shown = [{**n, "at": local_stack.iso_time(n.get("at"))} for n in body["notifications"][-args.last :]]
    _print(shown)
    return 0


def _needs_project_for_intents(args: argparse.Namespace) -> bool:
    """Only a fulfillment given with its token needs neither the stack nor a project."""
    return not (args.url and args.token)


def _needs_project_for_reads(args: argparse.Namespace) -> bool:
    return not args.homegraph


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acting = groups.add_parser(
        "google",
        help="act as Google Home against the local (or a given) fulfillment; read the HomeGraph stand-in",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    ).add_subparsers(dest="action", required=True)

    def command(name: str, help_text: str, run: Any, *options: str) -> argparse.ArgumentParser:
        parser = acting.add_parser(name, help=help_text)
        if "optional-user" in options:
            parser.add_argument("--user", help="agentUserId (default: every user)")
        else:
            parser.add_argument("--user", help="agentUserId (default: the running local stack's demo user)")
            parser.set_defaults(user_default=DEMO_USER)
        if "fulfillment" in options:
            parser.add_argument("--url", help="another fulfillment's URL: requests go straight there")
            parser.add_argument("--token", help="an access token of your own (requests go straight to the fulfillment)")
            parser.set_defaults(uses_project=_needs_project_for_intents)
        if "homegraph" in options:
            parser.add_argument("--homegraph", help="the HomeGraph stand-in's URL (default: the local stack's)")
            parser.set_defaults(uses_project=_needs_project_for_reads)
        if "read" in options:
            parser.set_defaults(unknown_user=NOTE)
        parser.set_defaults(run=run)
        return parser

    command("sync", "send action.devices.SYNC", sync, "fulfillment")
    query_parser = command("query", "send action.devices.QUERY", query, "fulfillment")
    query_parser.add_argument("--id", action="append", help="a device id; repeat (default: every synced device)")
    execute_parser = command("execute", "send action.devices.EXECUTE", execute, "fulfillment")
    execute_parser.add_argument("--id", action="append", required=True, help="a device id; repeat for several")
    execute_parser.add_argument("--command", required=True, help="e.g. OnOff or action.devices.commands.OnOff")
    execute_parser.add_argument("--params", default="{}", help="the command's params as JSON, e.g. '{\"on\": true}'")
    execute_parser.add_argument(
        "--follow-up-token", help="Google's followUpToken for the command's follow-up response (put among its params)"
    )
    challenge = execute_parser.add_mutually_exclusive_group()
    challenge.add_argument("--ack", action="store_true", help="answer an ackNeeded challenge")
    challenge.add_argument("--pin", help="answer a pinNeeded challenge")
    command("disconnect", "send action.devices.DISCONNECT", disconnect, "fulfillment")
    command("link", "the user links their account: the stand-in knows them and runs SYNC and QUERY", link, "homegraph")
    state_parser = command("state", "what the HomeGraph stand-in holds for the user", state, "homegraph", "read")
    state_parser.add_argument("--raw", action="store_true", help="the stand-in's record as it is")
    calls_parser = command(
        "calls", "the calls the HomeGraph stand-in received and made", calls, "homegraph", "read", "optional-user"
    )
    calls_parser.add_argument("--method", help="only these, e.g. requestSync, reportStateAndNotification")
    calls_parser.add_argument("--last", type=int, default=20, help="how many (default 20)")
    calls_parser.add_argument("--body", action="store_true", help="with each call's request and answer")
    notes = command(
        "notifications",
        "the notifications and follow-ups HomeGraph received",
        notifications,
        "homegraph",
        "read",
        "optional-user",
    )
    notes.add_argument("--last", type=int, default=20, help="how many (default 20)")
