"""`python -m functions users|clients ...`: sign-in accounts and OAuth clients for account linking.

users add --email E       creates an account; the password is asked twice on a terminal, else read from stdin (one
                          line). Prints the account's agentUserId, which `devices add --user` takes.
users show --email E      prints the account's agentUserId and its grants: one per completed account linking (each
                          Google account of a household that linked it), with client, created and last used; never
                          a token.
users list                one JSON line per account: e-mail, agentUserId, created.
users unlock --email E    forgets the account's failed sign-ins (every throttling counter of the account).
users set-password --email E
                          sets a new password (asked twice, or one line of stdin) and unlocks the account; links
                          already made stay.
users remove --email E [--with-devices]
                          revokes every grant (Google's tokens stop working, the user is marked unlinked), deletes
                          the account and its throttling counters; the devices stay unless --with-devices.
clients add --id ID --redirect-uri URI [--redirect-uri URI ...]
                          registers a client and prints its secret once (only its SHA-256 is stored). With
                          OAUTH_CLIENT_SECRET set (e.g. from Secret Manager), that secret is used and not printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from typing import Any

from functions.linking import model as linking
from tools.cli import Refused

CLIENT_SECRET_ENV = "OAUTH_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret


def _users() -> Any:
    from functions.linking.store import FirestoreUserDirectory

    return FirestoreUserDirectory()


def read_password() -> str:
    """Asks twice on a terminal; otherwise the first line of stdin (without its line break)."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != first:
            raise Refused("the passwords differ; nothing written")
        return first
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def _new_password() -> str:
    password = read_password().removesuffix("\r")
    problem = linking.password_problem(password)
    if problem:
        raise Refused(f"{problem}; nothing written")
    return password


def _existing(email: str) -> linking.Account:
    account: linking.Account | None = _users().find(email)
    if account is None:
        raise Refused(f"no account for {linking.normalize_email(email)!r}")
    return account


def _time(epoch_ms: int) -> str | None:
    from functions.core.times import format_time_ms

    return format_time_ms(epoch_ms) if epoch_ms else None


def users_add(args: argparse.Namespace) -> int:
    from functions.linking.store import AlreadyExists

    problem = linking.email_problem(args.email)
    if problem:
        raise Refused(problem)
    password = _new_password()
    try:
        account = _users().add(args.email, password)
    except AlreadyExists as exists:
        raise Refused(f"an account for {exists} already exists; nothing written") from exists
    print(json.dumps({"email": account.email, "agentUserId": account.agent_user_id}))
    return 0


def users_show(args: argparse.Namespace) -> int:
    from functions.linking.grant_store import FirestoreGrantStore

    account = _existing(args.email)
    now = int(time.time() * 1000)
    grants = [
        {
            "grant": grant.grant_id[:8],  # enough to tell them apart; the id revokes nothing on its own
            "client": grant.client_id,
            "created": _time(grant.created_at_ms),
            "lastUsed": _time(grant.last_used_at_ms),
            "live": grant.live(now),
        }
        for grant in FirestoreGrantStore().grants_of(account.agent_user_id)
    ]
    print(json.dumps({"email": account.email, "agentUserId": account.agent_user_id, "grants": grants}))
    return 0


def users_list(args: argparse.Namespace) -> int:
    for account, created_ms in _users().all_accounts():
        print(json.dumps({"email": account.email, "agentUserId": account.agent_user_id, "created": _time(created_ms)}))
    return 0


def _unlock(account: linking.Account) -> int:
    from functions.linking.store import FirestoreAttemptCounters

    return FirestoreAttemptCounters().clear_account(linking.account_key(account.email))


def users_unlock(args: argparse.Namespace) -> int:
    account = _existing(args.email)
    print(json.dumps({"email": account.email, "countersCleared": _unlock(account)}))
    return 0


def users_set_password(args: argparse.Namespace) -> int:
    account = _existing(args.email)
    password = _new_password()
    if not _users().set_password(account.email, password):
        raise Refused(f"no account for {account.email!r}")
    print(json.dumps({"email": account.email, "passwordSet": True, "countersCleared": _unlock(account)}))
    return 0


def users_remove(args: argparse.Namespace) -> int:
    from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore

    account = _existing(args.email)
    user = account.agent_user_id
    # Grants first: once the account is gone, nothing could revoke what Google still holds.
    revoked = FirestoreFulfillmentStore().disconnect(user, int(time.time() * 1000))
    cleared = _unlock(account)
    _users().remove(account.email)
    removed: list[str] = []
    if args.with_devices:
        registry = FirestoreDeviceRegistry()
        for device_id, _ in registry.list(user):
            if registry.remove(user, device_id):
                removed.append(device_id)
    shown = {"email": account.email, "agentUserId": user, "credentialsRevoked": revoked, "countersCleared": cleared}
    print(json.dumps({**shown, "devicesRemoved": sorted(removed)}))
    if not args.with_devices:
        print(f"The devices of {user} stay (remove them with --with-devices).", file=sys.stderr)
    return 0


def clients_add(args: argparse.Namespace) -> int:
    from functions.linking.store import AlreadyExists, FirestoreClientRegistry

    problems = [problem for problem in [linking.client_id_problem(args.id)] if problem]
    problems += [problem for uri in args.redirect_uri if (problem := linking.redirect_uri_problem(uri))]
    problems += [f"scope {scope!r} may not contain spaces" for scope in args.scope or [] if scope.split() != [scope]]
    from_environment = os.environ.get(CLIENT_SECRET_ENV, "")
    if from_environment and len(from_environment) < linking.CLIENT_SECRET_MIN_LENGTH:
        problems.append(f"{CLIENT_SECRET_ENV} must have at least {linking.CLIENT_SECRET_MIN_LENGTH} characters")
    if problems:
        raise Refused("refused, nothing written:\n  " + "\n  ".join(problems))
    secret = from_environment or linking.new_client_secret()
    grant_types = (linking.AUTHORIZATION_CODE,) if args.no_refresh else linking.GRANT_TYPES
    client = linking.OAuthClient(
        client_id=args.id,
        name=args.name or args.id,
        secret_hash=linking.hash_client_secret(secret),
        redirect_uris=tuple(dict.fromkeys(args.redirect_uri)),
        scopes=tuple(dict.fromkeys(args.scope or [])),
        grant_types=grant_types,
    )
    try:
        FirestoreClientRegistry().add(client, replace=args.replace)
    except AlreadyExists as exists:
        raise Refused(f"client {args.id!r} exists (use --replace for a new secret); nothing written") from exists
    shown: dict[str, Any] = {"clientId": client.client_id, "redirectUris": list(client.redirect_uris)}
    if from_environment:
        shown["clientSecret"] = f"(from {CLIENT_SECRET_ENV})"
    else:
        shown["clientSecret"] = secret
        print("The client secret is shown only now: paste it into the Google Home Developer Console.", file=sys.stderr)
    print(json.dumps(shown, indent=2))
    return 0


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = groups.add_parser("users", help="sign-in accounts for account linking").add_subparsers(
        dest="action", required=True
    )
    add = users.add_parser(
        "add", help="create an account (password asked twice, or read from stdin when it is not a terminal)"
    )
    add.add_argument("--email", required=True)
    add.set_defaults(run=users_add)
    show = users.add_parser("show", help="print an account's agentUserId and its grants (never a token)")
    show.add_argument("--email", required=True)
    show.set_defaults(run=users_show)
    listing = users.add_parser("list", help="one JSON line per account")
    listing.set_defaults(run=users_list)
    unlock = users.add_parser("unlock", help="forget the account's failed sign-ins")
    unlock.add_argument("--email", required=True)
    unlock.set_defaults(run=users_unlock)
    set_password = users.add_parser(
        "set-password", help="set a new password (asked twice, or read from stdin) and unlock the account"
    )
    set_password.add_argument("--email", required=True)
    set_password.set_defaults(run=users_set_password)
    remove = users.add_parser(
        "remove", help="revoke every grant and delete the account; its devices stay unless --with-devices"
    )
    remove.add_argument("--email", required=True)
    remove.add_argument("--with-devices", action="store_true", help="delete the user's devices (and PINs) too")
    remove.set_defaults(run=users_remove)

    clients = groups.add_parser("clients", help="OAuth clients allowed to link accounts (Google)").add_subparsers(
        dest="action", required=True
    )
    client_add = clients.add_parser(
        "add", help=f"register a client; prints its secret once (or uses ${CLIENT_SECRET_ENV} when set)"
    )
    client_add.add_argument("--id", required=True, help="the client ID given to Google")
    client_add.add_argument(
        "--redirect-uri",
        required=True,
        action="append",
        help="allowed redirect URI, compared exactly; repeat for several "
        "(Google's: https://oauth-redirect.googleusercontent.com/r/PROJECT_ID and the -sandbox one)",
    )
    client_add.add_argument("--name", help="shown on the sign-in and consent pages (default: the id)")
    client_add.add_argument("--scope", action="append", help="a scope the client may ask for; repeat for several")
    client_add.add_argument("--no-refresh", action="store_true", help="issue no refresh tokens to this client")
    client_add.add_argument("--replace", action="store_true", help="replace an existing client (new secret)")
    client_add.set_defaults(run=clients_add)
