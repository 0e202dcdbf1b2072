"""The whole stack on this machine, in one command (`make up`): emulators, functions, demo data.

    Firestore emulator --(its --functions_emulator)--> local Eventarc --> sync_on_device_change --> HomeGraph stand-in
    Pub/Sub emulator: state topic --(push subscription, retries, dead-letter topic)--> report_state --> stand-in
    fulfillment, authorize, token: HTTP, each in its own functions-framework process, like deployed functions
    HomeGraph stand-in --(SYNC, QUERY with a valid token, as Google does)--> fulfillment

Every piece prefers its default port (the ones firebase.json names) and takes a free one when that is taken;
the ports in use are printed. Ctrl-C stops everything this command started. A second start while one runs says
so and exits. Pieces whose code is not in main.py (yet) are left out. .local-stack/stack.json tells other tools
(`python -m functions google ...`) where everything is.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.platform import config
from tools import emulators
from tools.serving import start_function

ROOT = Path(__file__).resolve().parents[1]
# Logs and stack.json; LOCAL_STACK_DIR lets a test run its own stack beside a developer's.
STATE_DIR = Path(os.environ.get("LOCAL_STACK_DIR") or ROOT / ".local-stack")
STATE_FILE = STATE_DIR / "stack.json"
SHOWN_DIR = STATE_DIR.relative_to(ROOT) if STATE_DIR.is_relative_to(ROOT) else STATE_DIR
PROJECT = os.environ.get("GOOGLE_CLOUD_PROJECT", config.DEFAULT_PROJECT)
HOST = "127.0.0.1"
DEMO_EMAIL = "demo@example.com"
DEMO_CLIENT_ID = "google"
DEMO_DEVICES = Path(__file__).resolve().parent / "demo" / "devices.json"
# The device of the printed round-trip example.
PORCH_LIGHT = {
    "id": "porch-light",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Porch light"},
    "willReportState": True,
}
DEVICE_TRIGGER = "sync-on-device-change"
DEVICE_DOCUMENTS = "users/{agentUserId}/devices/{deviceId}"
REPORT_STATE_SUBSCRIPTION = "device-state-to-report-state"
DEAD_LETTER_TOPIC = "device-state-dead-letter"
# The deployed functions and their signatures (infra/ deploys the same); only those main.py names are started.
FUNCTIONS = {
    "fulfillment": "http",
    "authorize": "http",
    "token": "http",
    "sync_on_device_change": "cloudevent",
    "report_state": "cloudevent",
}
# Settings of the functions that make the demo quick: Google needs minutes, the stand-in seconds.
DEMO_SETTINGS = {"INITIAL_REPORT_DELAY_S": "2", "REQUEST_SYNC_WINDOW_S": "2"}

# Default ports; firebase.json names the same for the emulators.
DEFAULT_PORTS = {
    "firestore": 8080,
    "pubsub": 8085,
    "fulfillment": 8081,
    "authorize": 8082,
    "token": 8083,
    "sync_on_device_change": 8084,
    "report_state": 8086,
    "eventarc": 8089,
    "homegraph": 8090,
}


def pick_port(name: str) -> int:
    preferred = DEFAULT_PORTS.get(name)
    if preferred and emulators.port_is_free(preferred, HOST):
        return preferred
    return emulators.free_port(HOST)


@dataclass
class Stack:
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    emulators: list[emulators.Emulator] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)  # in-process pieces (Eventarc, stand-in)
    eventarc: Any = None
    standin: Any = None
    demo: dict[str, str] = field(default_factory=dict)

    def share(self, **variables: str) -> None:
        """Environment for the functions started after this, and for this process's own clients."""
        self.env.update(variables)
        os.environ.update(variables)

    def record(self) -> None:
        """What other tools need to find this stack (no secret but the demo's own, on this machine only)."""
        shared = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "HOMEGRAPH_ENDPOINT")
        STATE_FILE.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "urls": self.urls,
                    "env": {k: self.env[k] for k in shared if k in self.env},
                    "demo": {k: v for k, v in self.demo.items() if k != "token"},
                },
                indent=2,
            )
        )

    def log_path(self, name: str) -> Path:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        return STATE_DIR / f"{name}.log"

    def serve_function(self, target: str, signature: str = "http") -> str:
        """Runs one Cloud Function in its own functions-framework process; returns its URL."""
        served = start_function(
            target, self.env, signature=signature, host=HOST, port=pick_port(target), log_path=self.log_path(target)
        )
        self.processes[target] = served.process
        self.urls[target] = served.url
        return served.url

    def stop(self) -> None:
        for name, process in reversed(list(self.processes.items())):
            emulators.stop_process_group(process)
            del self.processes[name]
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                close()
        self.closers.clear()
        for emulator in reversed(self.emulators):
            emulator.stop()
        self.emulators.clear()
        with contextlib.suppress(FileNotFoundError):
            STATE_FILE.unlink()


def already_running() -> dict[str, Any] | None:
    try:
        state = json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return dict(state)


# The pieces, in start order. Each takes the stack and starts or prepares what it names.


def entry_points() -> list[str]:
    """The names main.py exports (read, not imported: this process stays free of the functions' imports)."""
    for node in ast.parse((ROOT / "main.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [str(name) for name in ast.literal_eval(node.value)]
    return []


def start_eventarc(stack: Stack) -> None:
    """Receives the Firestore emulator's trigger events and delivers them like Eventarc (retries included)."""
    if "sync_on_device_change" not in entry_points():
        return
    from tools.eventarc import LocalEventarc

    stack.eventarc = LocalEventarc(HOST, pick_port("eventarc")).start()
    stack.closers.append(stack.eventarc.stop)
    stack.urls["local eventarc"] = f"http://{stack.eventarc.address}"


def start_firestore(stack: Stack) -> None:
    emulator = emulators.start_firestore(
        PROJECT,
        HOST,
        pick_port("firestore"),
        functions_emulator=stack.eventarc.address if stack.eventarc else None,
        log_path=stack.log_path("firestore-emulator"),
    )
    stack.emulators.append(emulator)
    stack.share(FIRESTORE_EMULATOR_HOST=emulator.address, GOOGLE_CLOUD_PROJECT=PROJECT)
    stack.urls["firestore emulator"] = emulator.url


def start_pubsub(stack: Stack) -> None:
    """The Pub/Sub emulator with the state, commands, rejection and dead-letter topics (names as the functions read
    them), and a pull subscription on the rejection topic named like it (as infra/pubsub.tf)."""
    from tools import pubsub_local

    emulator = emulators.start_pubsub(PROJECT, HOST, pick_port("pubsub"), log_path=stack.log_path("pubsub-emulator"))
    stack.emulators.append(emulator)
    stack.share(PUBSUB_EMULATOR_HOST=emulator.address)
    stack.urls["pubsub emulator"] = emulator.url
    for topic in (config.state_topic(), config.commands_topic(), config.rejected_topic(), DEAD_LETTER_TOPIC):
        pubsub_local.create_topic(PROJECT, topic)
    pubsub_local.create_subscription(PROJECT, config.rejected_topic(), config.rejected_topic())


def start_homegraph(stack: Stack) -> None:
    """Google's side: the HomeGraph API, and SYNC / QUERY on the fulfillment with tokens minted in Firestore."""
    from tools.homegraph_standin import FirestoreTokenSource, StandIn

    stack.standin = StandIn(host=HOST, port=pick_port("homegraph"), token_source=FirestoreTokenSource()).start()
    stack.closers.append(stack.standin.stop)
    stack.share(HOMEGRAPH_ENDPOINT=stack.standin.url, **DEMO_SETTINGS)
    stack.urls["homegraph stand-in"] = stack.standin.url


def start_functions(stack: Stack) -> None:
    for target in entry_points():
        stack.serve_function(target, FUNCTIONS.get(target, "http"))
    if stack.standin is not None and "fulfillment" in stack.urls:
        stack.standin.fulfillment_url = stack.urls["fulfillment"]


def connect_triggers(stack: Stack) -> None:
    """Device writes -> sync_on_device_change (Eventarc, with retries); state topic -> report_state (push)."""
    if stack.eventarc is not None and "sync_on_device_change" in stack.urls:
        from tools.eventarc import Retry

        firestore_url = next(e.url for e in stack.emulators if e.name == "firestore")
        stack.eventarc.register_firestore_trigger(
            firestore_url,
            PROJECT,
            DEVICE_TRIGGER,
            DEVICE_DOCUMENTS,
            [stack.urls["sync_on_device_change"]],
            retry=Retry(attempts=5, min_backoff_s=1.0, max_backoff_s=10.0),
        )
    if "report_state" in stack.urls and "PUBSUB_EMULATOR_HOST" in stack.env:
        from tools import pubsub_local

        subscription = pubsub_local.create_subscription(
            PROJECT, config.state_topic(), REPORT_STATE_SUBSCRIPTION, push_endpoint=stack.urls["report_state"]
        )
        # As infra/pubsub.tf: redelivery with backoff, then the dead-letter topic (the emulator does both).
        pubsub_local.subscriber().update_subscription(
            request={
                "subscription": {
                    "name": subscription,
                    "dead_letter_policy": {
                        "dead_letter_topic": f"projects/{PROJECT}/topics/{DEAD_LETTER_TOPIC}",
                        "max_delivery_attempts": 5,
                    },
                    "retry_policy": {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 10}},
                },
                "update_mask": {"paths": ["dead_letter_policy", "retry_policy"]},
            }
        )
        pubsub_local.create_subscription(PROJECT, DEAD_LETTER_TOPIC, DEAD_LETTER_TOPIC)


def seed_demo(stack: Stack) -> None:
    """A demo account with a few devices, Google's OAuth client, and the account linked at the stand-in."""
    from functions.core import tokens
    from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
    from functions.platform.firestore import FirestoreTokenStore
    from tools.cli import validated_devices

    password = secrets.token_urlsafe(9)
    user = _demo_account(password)
    FirestoreDeviceRegistry().add(user, validated_devices(json.loads(DEMO_DEVICES.read_text())), replace=True)
    now = int(time.time() * 1000)
    token = tokens.issue(FirestoreTokenStore(), tokens.ACCESS, user, 24 * 3600, now)
    FirestoreFulfillmentStore().mark_linked(user, now)
    stack.demo.update(user=user, email=DEMO_EMAIL, password=password, token=token)
    stack.env["DEMO_ACCESS_TOKEN"] = token
    client_secret = _demo_client()
    if client_secret:
        stack.demo.update(client_id=DEMO_CLIENT_ID, client_secret=client_secret)
    if stack.standin is not None and stack.standin.fulfillment_url:
        # The user has linked: Google knows them, runs SYNC and QUERY, and from now on accepts their reports.
        stack.standin.link(user, sync=True)


def _demo_account(password: str) -> str:
    """The demo sign-in account's agentUserId (accounts of account linking), or a plain id without it."""
    try:
        from functions.linking.store import FirestoreUserDirectory
    except ImportError:
        return "demo-user"
    return str(FirestoreUserDirectory().add(DEMO_EMAIL, password).agent_user_id)


def _demo_client() -> str | None:
    """Registers Google's OAuth client for the demo project; returns its secret (shown only here)."""
    try:
        from functions.linking import model as linking
        from functions.linking.store import FirestoreClientRegistry
    except ImportError:
        return None
    secret = linking.new_client_secret()
    redirects = tuple(
        f"https://oauth-redirect{suffix}.googleusercontent.com/r/{PROJECT}" for suffix in ("", "-sandbox")
    )
    client = linking.OAuthClient(
        client_id=DEMO_CLIENT_ID,
        name="Google (demo)",
        secret_hash=linking.hash_client_secret(secret),
        redirect_uris=redirects,
    )
    FirestoreClientRegistry().add(client, replace=True)
    return secret


def describe(stack: Stack) -> None:
    """The example commands printed once everything runs."""
    demo = stack.demo
    user, token = demo["user"], demo["token"]
    url = stack.urls["fulfillment"]
    python = ".venv/bin/python -m functions"
    env = f"FIRESTORE_EMULATOR_HOST={stack.env['FIRESTORE_EMULATOR_HOST']} GOOGLE_CLOUD_PROJECT={PROJECT}"
    notes = [
        f"Demo user: {user} (sign-in {demo['email']} / {demo['password']}; devices from "
        f"{DEMO_DEVICES.relative_to(ROOT)})",
        f"Access token (24 h): {token}",
        "",
        "SYNC, the way Google asks:",
        f"  curl -s {url} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
        '    -d \'{"requestId": "r1", "inputs": [{"intent": "action.devices.SYNC"}]}\'',
        "",
        "Act as Google (mints its own token; `--help` for more):",
        f"  {python} google sync --user {user}",
        f"  {python} google execute --user {user} --id desk-lamp --command OnOff --params '{{\"on\": true}}'",
        f"  {python} google state --user {user}          # what HomeGraph (the stand-in) holds",
    ]
    if stack.eventarc is not None:
        notes += [
            "",
            "The round trip: a device added in Firestore -> Request Sync -> SYNC -> reported state:",
            f"  echo {shlex.quote(json.dumps(PORCH_LIGHT))} | \\",
            f"    {env} {python} devices add --user {user} --file -",
            f"  {python} google calls --user {user} --method requestSync",
            f"  {python} google state --user {user}",
        ]
    if "client_secret" in demo and "authorize" in stack.urls:
        redirect = f"https://oauth-redirect.googleusercontent.com/r/{PROJECT}"
        notes += [
            "",
            f"Account linking: client {demo['client_id']} / {demo['client_secret']} (registered for {redirect});",
            f"  sign in at {stack.urls['authorize']}?response_type=code&client_id={demo['client_id']}"
            f"&redirect_uri={redirect}&state=demo",
            f"  then exchange the code from the redirect at {stack.urls.get('token', '')}",
        ]
    notes += [
        "",
        "Operators' CLI against this stack:",
        f"  {env} {python} devices list --user {user}",
    ]
    stack.notes += notes


PIECES: list[Callable[[Stack], None]] = [
    start_eventarc,
    start_firestore,
    start_pubsub,
    start_homegraph,
    start_functions,
    connect_triggers,
    seed_demo,
    describe,
]


def main() -> int:
    running = already_running()
    if running:
        print(f"The local stack already runs (pid {running['pid']}); its URLs:")
        for name, url in running.get("urls", {}).items():
            print(f"  {name:<24} {url}")
        print("Stop it with Ctrl-C in its terminal, then start again.")
        return 1
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps({"pid": os.getpid(), "urls": {}}))
    stack = Stack()

    def interrupt(signum: int, _frame: Any) -> None:
        # Only the first Ctrl-C or SIGTERM counts: a second one must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        for piece in PIECES:
            piece(stack)
        stack.record()
        print(f"\nLocal stack is up (project {PROJECT}). Logs in {SHOWN_DIR}")
        for name, url in stack.urls.items():
            print(f"  {name:<24} {url}")
        print()
        print("\n".join(stack.notes))
        print("\nCtrl-C stops everything.", flush=True)
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        failed = [name for name, p in stack.processes.items() if p.poll() is not None]
        print(f"{', '.join(failed)} stopped unexpectedly; see {SHOWN_DIR}/*.log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...")
        return 0
    except (RuntimeError, emulators.EmulatorUnavailable) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("Stopped.")


if __name__ == "__main__":
    raise SystemExit(main())
