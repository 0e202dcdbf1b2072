"""`python -m functions homegraph ...`: HomeGraph from the operator's side.

    request-sync --user U      ask Google to SYNC the user now (e.g. after fixing a 403; bypasses coalescing)
    ledger --user U            the user's Request Sync coalescing ledger (last call, pending changes, lease)
    query --user U --id D ...  the states Google holds for the devices
    standin [...]              run the local HomeGraph stand-in (see tools/homegraph_standin.py)

Calls go to Google with Application Default Credentials, or to HOMEGRAPH_ENDPOINT when it is set (the running
local stack's stand-in when the environment names no project of its own).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from tools import local_stack
from tools.cli import NOTE, Refused


def _client() -> Any:
    from functions.platform.homegraph import HomeGraphClient

    return HomeGraphClient.from_environment()


def request_sync(args: argparse.Namespace) -> int:
    from functions.core.homegraph import HomeGraphError

    try:
        outcome = _client().request_sync(args.user)
    except HomeGraphError as error:
        raise Refused(f"HomeGraph answered {error.status or 'nothing'}: {error.reason}") from error
    print(json.dumps({"requestSync": args.user, "attempts": outcome.attempts}))
    return 0


def query(args: argparse.Namespace) -> int:
    from functions.core.homegraph import HomeGraphError

    try:
        outcome = _client().query(args.user, args.id)
    except HomeGraphError as error:
        raise Refused(f"HomeGraph answered {error.status or 'nothing'}: {error.reason}") from error
    print(json.dumps(dict(outcome.body), indent=2, sort_keys=True))
    return 0


def ledger(args: argparse.Namespace) -> int:
    from functions.request_sync.ledger_store import FirestoreSyncLedger

    shown: dict[str, Any] = dataclasses.asdict(FirestoreSyncLedger().ledger(args.user))
    # The raw clocks stay (scripts read them); beside them, each time in ISO 8601 like every time the tools print.
    shown["times"] = {
        name.rsplit("_", 1)[0]: local_stack.iso_time(value / (1e6 if name.endswith("_us") else 1e3))
        for name, value in shown.items()
        if name.endswith(("_us", "_ms")) and isinstance(value, int) and value > 0
    }
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def standin(args: argparse.Namespace) -> int:
    from tools import homegraph_standin

    argv = ["--host", args.host, "--port", str(args.port), "--sync-settle-s", str(args.sync_settle_s)]
    argv += ["--fulfillment-url", args.fulfillment_url] if args.fulfillment_url else []
    argv += ["--firestore-tokens"] if args.firestore_tokens else []
    argv += ["--auto-link"] if args.auto_link else []
    return homegraph_standin.main(argv)


def register(groups: Any) -> None:
    homegraph = groups.add_parser("homegraph", help="HomeGraph: request sync, query, the local stand-in")
    actions = homegraph.add_subparsers(dest="action", required=True)
    sync = actions.add_parser("request-sync", help="ask Google to SYNC the user's devices now")
    sync.add_argument("--user", required=True)
    sync.set_defaults(run=request_sync)
    show = actions.add_parser("ledger", help="print the user's Request Sync ledger")
    show.add_argument("--user", required=True)
    show.set_defaults(run=ledger, unknown_user=NOTE)
    states = actions.add_parser("query", help="print the states Google holds for devices")
    states.add_argument("--user", required=True)
    states.add_argument("--id", required=True, action="append", help="a device id (repeatable)")
    states.set_defaults(run=query, unknown_user=NOTE)
    serve = actions.add_parser("standin", help="run the local HomeGraph stand-in until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--fulfillment-url", help="where Google's SYNC and QUERY go after a requestSync")
    serve.add_argument("--firestore-tokens", action="store_true", help="mint the fulfillment's tokens in Firestore")
    serve.add_argument("--auto-link", action="store_true", help="treat every agentUserId as linked")
    serve.add_argument("--sync-settle-s", type=float, default=0.0, help="seconds before synced devices are known")
    serve.set_defaults(run=standin, uses_project=False)
