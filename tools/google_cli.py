"""`python -m functions google ...`: play Google Home against a fulfillment, and read what the HomeGraph stand-in holds.

    google sync --user U                         SYNC, as Google sends it after linking and on Request Sync
    google query --user U [--id D ...]           QUERY (no --id: every device the user's SYNC lists)
    google execute --user U --id D [--id D ...] --command OnOff --params '{"on": true}' [--ack | --pin PIN]
    google disconnect --user U                   DISCONNECT, as when the user unlinks
    google link --user U                         the user links: the stand-in knows them and runs SYNC, QUERY
    google state --user U                        the devices and states the HomeGraph stand-in holds
    google calls --user U [--method M]           what reached the stand-in (requestSync, reportState, ...)

The fulfillment and stand-in URLs come from the running local stack (.local-stack/stack.json, written by
`make up`), or --url / --homegraph. Requests carry a valid access token like Google's: --token, or one minted in the
stack's Firestore the way account linking stores them (kept while valid, as Google keeps it). Exit codes: 0 the
fulfillment answered 200 with no error (for the request, a command or a device), 1 otherwise (the answer is
still printed), 2 usage.
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
from tools import google
from tools.cli import Refused

ROOT = Path(__file__).resolve().parents[1]
STACK_DIR = Path(os.environ.get("LOCAL_STACK_DIR") or ROOT / ".local-stack")  # as tools/stack.py
STACK_FILE = STACK_DIR / "stack.json"
TOKEN_CACHE = STACK_DIR / "google-tokens.json"
TOKEN_TTL_S = 3600
TIMEOUT_S = 30


def stack() -> dict[str, Any]:
    """What the running local stack wrote: {"pid", "urls": {...}, "env": {...}}; {} when none runs."""
    try:
        state = json.loads(STACK_FILE.read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return {}
    return dict(state)


def _stack_url(args: argparse.Namespace, explicit: str | None, name: str, option: str) -> str:
    if explicit:
        return explicit.rstrip("/")
    url = stack().get("urls", {}).get(name)
    if not url:
        raise Refused(f"no local stack runs (start it with `make up`), and no {option} was given")
    return str(url).rstrip("/")


def _use_stack_environment() -> None:
    """Points the Firestore client at the stack's emulator, unless the environment already says where to go."""
    env = stack().get("env", {})
    for name in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
        if name in env and not os.environ.get(name):
            os.environ[name] = env[name]


def access_token(user: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    _use_stack_environment()
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST", "")
    key = f"{os.environ.get('GOOGLE_CLOUD_PROJECT', '')}|{emulator}|{user}"
    cache: dict[str, Any] = {}
    if emulator:  # only emulator tokens are kept on disk; a real project's are minted each time
        try:
            cache = json.loads(TOKEN_CACHE.read_text())
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
        TOKEN_CACHE.parent.mkdir(parents=True, exist_ok=True)
        TOKEN_CACHE.write_text(json.dumps(cache))
        TOKEN_CACHE.chmod(0o600)
    return token


def _http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
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


def send(args: argparse.Namespace, request: dict[str, Any]) -> tuple[int, Any]:
    url = _stack_url(args, args.url, "fulfillment", "--url")
    return _http("POST", url, request, access_token(args.user, args.token))


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
    extra: dict[str, Any] = {}
    if args.ack:
        extra["challenge"] = {"ack": True}
    if args.pin is not None:
        extra["challenge"] = {"pin": args.pin}
    request = google.execute_request([(args.id, [google.execution(args.command, params, **extra)])])
    return _answer(*send(args, request))


def disconnect(args: argparse.Namespace) -> int:
    status, body = send(args, google.disconnect_request())
    _forget_tokens(args.user)  # DISCONNECT revoked them
    return _answer(status, body)


def _forget_tokens(user: str) -> None:
    try:
        cache = json.loads(TOKEN_CACHE.read_text())
    except (OSError, ValueError):
        return
    TOKEN_CACHE.write_text(json.dumps({k: v for k, v in cache.items() if not k.endswith(f"|{user}")}))


def _standin(args: argparse.Namespace) -> str:
    return _stack_url(args, args.homegraph, "homegraph stand-in", "--homegraph")


def link(args: argparse.Namespace) -> int:
    access_token(args.user, None)  # Google holds a token for the user once they have linked
    user = urllib.parse.quote(args.user, safe="")
    status, body = _http("POST", f"{_standin(args)}/standin/users/{user}:link", {"sync": True})
    if status != 200:
        raise Refused(f"the stand-in answered {status}: {body}")
    _print({"agentUserId": args.user, "linked": body.get("linked"), "synced": body.get("synced")})
    return 0 if body.get("synced") else 1


def state(args: argparse.Namespace) -> int:
    user = urllib.parse.quote(args.user, safe="")
    status, body = _http("GET", f"{_standin(args)}/standin/users/{user}")
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


def calls(args: argparse.Namespace) -> int:
    query_string = urllib.parse.urlencode({k: v for k, v in (("agentUserId", args.user), ("method", args.method)) if v})
    status, body = _http("GET", f"{_standin(args)}/standin/calls?{query_string}")
    if status != 200:
        raise Refused(f"the stand-in answered {status}: {body}")
    shown = [
        {k: call.get(k) for k in ("seq", "method", "agentUserId", "status", "caller", "reason", "at") if k in call}
        for call in body["calls"][-args.last :]
    ]
    _print(shown)
    return 0


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acting = groups.add_parser(
        "google",
        help="act as Google Home against the local (or a given) fulfillment; read the HomeGraph stand-in",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    ).add_subparsers(dest="action", required=True)

    def command(name: str, help_text: str, run: Any, *options: str) -> argparse.ArgumentParser:
        parser = acting.add_parser(name, help=help_text)
        parser.add_argument("--user", required=True, help="agentUserId")
        if "fulfillment" in options:
            parser.add_argument("--url", help="the fulfillment URL (default: the local stack's)")
            parser.add_argument("--token", help="an access token (default: one minted in the stack's Firestore)")
        if "homegraph" in options:
            parser.add_argument("--homegraph", help="the HomeGraph stand-in's URL (default: the local stack's)")
        parser.set_defaults(run=run)
        return parser

    command("sync", "send action.devices.SYNC", sync, "fulfillment")
    query_parser = command("query", "send action.devices.QUERY", query, "fulfillment")
    query_parser.add_argument("--id", action="append", help="a device id; repeat (default: every synced device)")
    execute_parser = command("execute", "send action.devices.EXECUTE", execute, "fulfillment")
    execute_parser.add_argument("--id", action="append", required=True, help="a device id; repeat for several")
    execute_parser.add_argument("--command", required=True, help="e.g. OnOff or action.devices.commands.OnOff")
    execute_parser.add_argument("--params", default="{}", help="the command's params as JSON, e.g. '{\"on\": true}'")
    challenge = execute_parser.add_mutually_exclusive_group()
    challenge.add_argument("--ack", action="store_true", help="answer an ackNeeded challenge")
    challenge.add_argument("--pin", help="answer a pinNeeded challenge")
    command("disconnect", "send action.devices.DISCONNECT", disconnect, "fulfillment")
    command("link", "the user links their account: the stand-in knows them and runs SYNC and QUERY", link, "homegraph")
    state_parser = command("state", "what the HomeGraph stand-in holds for the user", state, "homegraph")
    state_parser.add_argument("--raw", action="store_true", help="the stand-in's record as it is")
    calls_parser = command("calls", "the calls the HomeGraph stand-in received for the user", calls, "homegraph")
    calls_parser.add_argument("--method", help="only these, e.g. requestSync, reportStateAndNotification")
    calls_parser.add_argument("--last", type=int, default=20, help="how many (default 20)")
