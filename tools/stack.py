"""The whole stack on this machine, in one command (`make up`): emulators, functions, demo data, a Google Home page.

    Firestore emulator --(its --functions_emulator)--> local Eventarc --> sync_on_device_change --> HomeGraph stand-in
    Pub/Sub emulator: state topic --(push subscription, retries, dead-letter topic)--> report_state --> stand-in
    fulfillment, authorize, token: HTTP, each in its own functions-framework process, like deployed functions
    HomeGraph stand-in --(SYNC, QUERY with a valid token, as Google does)--> fulfillment; the Google Home page at /

Every piece prefers its default port (the ones firebase.json names) and takes a free one only when that one has a
listener (ports of a stack stopped a moment ago are free again) or another stack starting at the same moment has
reserved it (tools/ports.py). The terminal shows each piece as it comes up, the
banner, then a line per request or event (tools/stack_console.py); --quiet shows the banner alone, --verbose every
line the functions log. Ctrl-C, SIGTERM and closing the terminal (SIGHUP) stop everything this command started.
Killed outright, it still takes its children with it: a reaper process ends their process groups once it is gone
(tools/reaper.py), and on Linux each child also gets a parent-death signal (tools/emulators.py); a record left
behind by a stack that could not clean up is found, and its leftovers ended, at the next start. A second start
while one runs says so and exits.

Data lasts: Firestore's documents are exported to .local-stack/data/<project>/ when the stack stops (and every
AUTOSAVE_S while it runs) and imported at the next start, with the demo account's password and client secret;
`--fresh` (`make up FRESH=1`) starts from nothing. .local-stack/stack.json tells the other tools where everything is
(tools/local_stack.py).

Start-up is the list PIECES: each step takes the Stack and starts or prepares what it names, in that order.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.platform import config
from tools import emulators, local_stack
from tools.ports import PortReservations
from tools.reaper import Reaper
from tools.serving import FunctionProcess, launch_function, wait_until_serving
from tools.stack_console import Console, LogTail

ROOT = Path(__file__).resolve().parents[1]
PROJECT = os.environ.get("GOOGLE_CLOUD_PROJECT", config.DEFAULT_PROJECT)
HOST = "127.0.0.1"
DEMO_EMAIL = "demo@example.com"
DEMO_CLIENT_ID = "google"
DEMO_DEVICES = Path(__file__).resolve().parent / "demo" / "devices.json"
DEMO_LOCK = "front-door"  # gets a PIN, so that unlocking it asks for one (the page prompts)
DEMO_PIN = "1234"
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
AUTOSAVE_S = 30.0  # what a stack killed outright (no time to export) loses at most

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


# The ports this process's stack took, reserved against stacks starting at the same moment (tools/ports.py).
RESERVED = PortReservations()


def pick_port(name: str) -> int:
    return RESERVED.pick(DEFAULT_PORTS.get(name), HOST)


def shown_path(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


@dataclass
class Stack:
    console: Console = field(default_factory=Console)
    fresh: bool = False  # --fresh: the data of earlier runs is dropped
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    emulators: list[emulators.Emulator] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)  # in-process pieces (Eventarc, stand-in)
    eventarc: Any = None
    standin: Any = None
    logs: LogTail | None = None
    demo: dict[str, str] = field(default_factory=dict)
    imported: bool = False  # Firestore started from the data of an earlier run
    saving: threading.Lock = field(default_factory=threading.Lock)
    reaper: Reaper | None = None  # ends the children's process groups if this process ends without stopping them
    pubsub_subscriber: Any = None  # one client for every subscription the steps create

    @property
    def data_dir(self) -> Path:
        return local_stack.data_dir() / PROJECT

    @property
    def firestore_export(self) -> Path:
        return self.data_dir / "firestore"

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "demo.json"

    def share(self, **variables: str) -> None:
        """Environment for the functions started after this, and for this process's own clients."""
        self.env.update(variables)
        os.environ.update(variables)

    def up(self, name: str, url: str, since: float) -> None:
        """A piece answers: one line on the terminal, and the record says where it is."""
        self.urls[name] = url
        self.console.component(name, url, time.monotonic() - since)
        self.record()

    def children(self) -> list[dict[str, Any]]:
        """The processes this stack started, as the record lists them (a later start ends leftovers by them)."""
        started = [*self.processes.values(), *(e.process for e in self.emulators)]
        return [{"pid": p.pid, "command": local_stack.command_line(p.pid)} for p in started if p.poll() is None]

    def record(self) -> None:
        """What other tools need to find this stack (no secret but the demo's own, on this machine only); and the
        reaper hears of every child started since the last record."""
        if self.reaper is not None:
            for process in [*self.processes.values(), *(e.process for e in self.emulators)]:
                if process.poll() is None:
                    self.reaper.watch(process.pid)  # each child leads its own process group
        local_stack.record_path().write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "urls": self.urls,
                    "env": {k: self.env[k] for k in local_stack.SHARED_ENV if k in self.env},
                    "demo": {k: v for k, v in self.demo.items() if k != "token"},
                    "children": self.children(),
                },
                indent=2,
            )
        )

    def launch(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        """Starts a process of the stack's own (a simulator, a tool): in its own process group, ending with the
        stack however it ends, logging to .local-stack/NAME.log, stopped with the functions."""
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - owned by the child process
        process = subprocess.Popen(
            emulators.guarded(command),
            cwd=ROOT,
            env=dict(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        self.record()
        return process

    def reserve_port(self, preferred: int) -> int:
        """A port for a step's own server: `preferred` if free and not another stack's (tools/ports.py)."""
        return RESERVED.pick(preferred, HOST)

    def log_path(self, name: str) -> Path:
        local_stack.state_dir().mkdir(parents=True, exist_ok=True)
        return local_stack.state_dir() / f"{name}.log"

    def save(self) -> bool:
        """Exports Firestore's documents to the data folder (the next start imports them); False if it could not."""
        firestore = next((e for e in self.emulators if e.name == "firestore" and e.process.poll() is None), None)
        if firestore is None:
            return False
        with self.saving:
            try:
                emulators.export_firestore(firestore.address, PROJECT, self.firestore_export)
            except (OSError, ValueError) as problem:
                self.console.say(f"the Firestore data could not be saved: {problem}", "warning")
                return False
        return True

    def stop(self) -> None:
        stopped = list(self.processes.values())
        emulators.stop_process_groups(stopped)  # the functions first: no more writes while the data is saved
        for process in stopped:
            if self.reaper is not None:
                self.reaper.forget(process.pid)
        self.processes.clear()
        saved = self.save()
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                close()
        self.closers.clear()
        emulators.stop_process_groups([e.process for e in self.emulators])
        for emulator in self.emulators:
            if self.reaper is not None:
                self.reaper.forget(emulator.process.pid)
        self.emulators.clear()
        if self.reaper is not None:
            self.reaper.close()
        if self.logs is not None:
            self.logs.stop()
        with contextlib.suppress(FileNotFoundError):
            local_stack.record_path().unlink()
        RESERVED.release()
        if saved:
            self.console.say(f"Data saved in {shown_path(self.data_dir)} (the next `make up` starts with it).")


# The pieces, in start order. Each takes the stack and starts or prepares what it names.


def entry_points() -> list[str]:
    """The names main.py exports (read, not imported: this process stays free of the functions' imports)."""
    for node in ast.parse((ROOT / "main.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [str(name) for name in ast.literal_eval(node.value)]
    return []


def prepare_data(stack: Stack) -> None:
    """--fresh drops what earlier runs left; otherwise Firestore starts from their export, if there is one."""
    if stack.fresh:
        shutil.rmtree(stack.data_dir, ignore_errors=True)
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    stack.data_dir.chmod(0o700)  # the demo's password and client secret are in it


def start_eventarc(stack: Stack) -> None:
    """Receives the Firestore emulator's trigger events and delivers them like Eventarc (retries included)."""
    if "sync_on_device_change" not in entry_points():
        return
    from tools.eventarc import LocalEventarc

    since = time.monotonic()
    stack.eventarc = LocalEventarc(HOST, pick_port("eventarc")).start()
    stack.eventarc.listeners.append(stack.console.delivery)
    stack.closers.append(stack.eventarc.stop)
    stack.up("local eventarc", f"http://{stack.eventarc.address}", since)


def start_emulators(stack: Stack) -> None:
    """Firestore (from the last run's data unless --fresh) and Pub/Sub, started together."""
    since = time.monotonic()
    export = emulators.latest_export(stack.firestore_export)
    firestore = emulators.launch_firestore(
        PROJECT,
        HOST,
        pick_port("firestore"),
        functions_emulator=stack.eventarc.address if stack.eventarc else None,
        log_path=stack.log_path("firestore-emulator"),
        import_from=export,
    )
    stack.emulators.append(firestore)
    pubsub = emulators.launch_pubsub(PROJECT, HOST, pick_port("pubsub"), log_path=stack.log_path("pubsub-emulator"))
    stack.emulators.append(pubsub)
    stack.record()
    try:
        emulators.wait_until_up(firestore)
    except emulators.EmulatorUnavailable as problem:
        if export is None:
            raise
        hint = "it started from the kept data: `make up FRESH=1` starts clean"
        raise emulators.EmulatorUnavailable(f"{problem}; {hint}") from problem
    stack.imported = export is not None
    stack.share(FIRESTORE_EMULATOR_HOST=firestore.address, GOOGLE_CLOUD_PROJECT=PROJECT)
    stack.up("firestore emulator", firestore.url, since)
    emulators.wait_until_up(pubsub)
    stack.share(PUBSUB_EMULATOR_HOST=pubsub.address)
    stack.up("pubsub emulator", pubsub.url, since)


def create_topics(stack: Stack) -> None:
    """The state, commands, rejection and dead-letter topics (names as the functions read them), and a pull
    subscription on the rejection topic named like it (as infra/pubsub.tf)."""
    from tools import pubsub_local

    publisher = pubsub_local.publisher()
    for topic in (config.state_topic(), config.commands_topic(), config.rejected_topic(), DEAD_LETTER_TOPIC):
        pubsub_local.create_topic(PROJECT, topic, publisher)
    subscriber = stack.pubsub_subscriber = pubsub_local.subscriber()
    pubsub_local.create_subscription(PROJECT, config.rejected_topic(), config.rejected_topic(), client=subscriber)


def start_homegraph(stack: Stack) -> None:
    """Google's side: the HomeGraph API, SYNC / QUERY on the fulfillment with tokens minted in Firestore, the page."""
    from tools.homegraph_standin import FirestoreTokenSource, StandIn

    since = time.monotonic()
    stack.standin = StandIn(host=HOST, port=pick_port("homegraph"), token_source=FirestoreTokenSource()).start()
    stack.standin.listeners.append(stack.console.standin_call)
    stack.closers.append(stack.standin.stop)
    stack.share(HOMEGRAPH_ENDPOINT=stack.standin.url, **DEMO_SETTINGS)
    stack.up("homegraph stand-in", stack.standin.url, since)


def start_device_cloud(stack: Stack) -> None:
    """The device cloud simulator (tools/devicecloud.py) for "pubsub" and "webhook" devices. Before the functions,
    which get its WEBHOOK_URL and WEBHOOK_SECRET; after the emulators and topics, which it uses."""
    from tools.devicecloud import start_in_stack

    start_in_stack(stack)


def start_functions(stack: Stack) -> None:
    """Every function of main.py in its own functions-framework process, all started at once."""
    since = time.monotonic()
    stack.logs = stack.logs or LogTail(stack.console).start()
    started: list[FunctionProcess] = []
    for target in entry_points():
        log_path = stack.log_path(target)
        stack.logs.follow(target, log_path)
        signature = FUNCTIONS.get(target, "http")
        served = launch_function(
            target, stack.env, signature=signature, host=HOST, port=pick_port(target), log_path=log_path
        )
        stack.processes[target] = served.process
        started.append(served)
    stack.record()
    for served in started:
        wait_until_serving(served)
        stack.up(served.target, served.url, since)
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

        subscriber = stack.pubsub_subscriber or pubsub_local.subscriber()
        subscription = pubsub_local.create_subscription(
            PROJECT,
            config.state_topic(),
            REPORT_STATE_SUBSCRIPTION,
            push_endpoint=stack.urls["report_state"],
            client=subscriber,
        )
        # As infra/pubsub.tf: redelivery with backoff, then the dead-letter topic (the emulator does both).
        subscriber.update_subscription(
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
        pubsub_local.create_subscription(PROJECT, DEAD_LETTER_TOPIC, DEAD_LETTER_TOPIC, client=subscriber)


def seed_demo(stack: Stack) -> None:
    """A demo account with a few devices and Google's OAuth client; on data of an earlier run, the same account,
    password and client secret (and the devices as they were left)."""
    from functions.core import tokens
    from functions.fulfillment.store import FirestoreDeviceRegistry, FirestoreFulfillmentStore
    from functions.platform.firestore import FirestoreTokenStore
    from tools.cli import validated_devices

    kept = _kept_secrets(stack)
    user, password = _demo_account(kept.get("password"))
    registry = FirestoreDeviceRegistry()
    now = int(time.time() * 1000)
    if not registry.list(user) and not stack.imported:
        registry.add(user, validated_devices(json.loads(DEMO_DEVICES.read_text())), replace=True)
        FirestoreFulfillmentStore().mark_linked(user, now)  # the demo user has linked (link_users tells Google)
        _demo_pin(user)
    token = tokens.issue(FirestoreTokenStore(), tokens.ACCESS, user, 24 * 3600, now)
    stack.demo.update(user=user, email=DEMO_EMAIL, password=password, token=token)
    stack.env["DEMO_ACCESS_TOKEN"] = token
    client_secret = _demo_client(kept.get("clientSecret"))
    if client_secret:
        stack.demo.update(client_id=DEMO_CLIENT_ID, client_secret=client_secret)
    stack.secrets_file.write_text(json.dumps({"password": password, "clientSecret": client_secret}))
    stack.secrets_file.chmod(0o600)


def _kept_secrets(stack: Stack) -> dict[str, str]:
    """The demo's password and client secret of the last run: they go with its data."""
    if not stack.imported:
        return {}
    try:
        kept = json.loads(stack.secrets_file.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in kept.items() if isinstance(v, str)} if isinstance(kept, dict) else {}


def _demo_account(password: str | None) -> tuple[str, str]:
    """The demo sign-in account's agentUserId and password (accounts of account linking), or a plain id without
    it. An account kept from an earlier run keeps its password when it is known, else gets a new one."""
    kept = password is not None
    password = password or secrets.token_urlsafe(9)
    try:
        from functions.linking.store import FirestoreUserDirectory
    except ImportError:
        return "demo-user", password
    directory = FirestoreUserDirectory()
    account = directory.find(DEMO_EMAIL)
    if account is None:
        return str(directory.add(DEMO_EMAIL, password).agent_user_id), password
    if not kept:  # an account of earlier data whose password this stack does not know: it gets a new one
        directory.set_password(DEMO_EMAIL, password)
    return str(account.agent_user_id), password


def _demo_pin(user: str) -> None:
    """The demo lock's PIN, so that unlocking it shows the PIN challenge."""
    try:
        from functions.fulfillment.pin_hashing import Argon2PinHasher
        from functions.fulfillment.pin_store import FirestorePinStore
    except ImportError:
        return
    FirestorePinStore().set_pin(user, DEMO_LOCK, Argon2PinHasher().hash(DEMO_PIN), int(time.time() * 1000))


def _demo_client(kept_secret: str | None) -> str | None:
    """Google's OAuth client for the demo project; returns its secret (kept from the last run when it still fits)."""
    try:
        from functions.linking import model as linking
        from functions.linking.store import FirestoreClientRegistry
    except ImportError:
        return None
    registry = FirestoreClientRegistry()
    existing = registry.get(DEMO_CLIENT_ID)
    if kept_secret and existing is not None and existing.secret_hash == linking.hash_client_secret(kept_secret):
        return kept_secret
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
    registry.add(client, replace=True)
    return secret


def link_users(stack: Stack) -> None:
    """Google knows every user who has linked (Firestore says so): the stand-in links them, runs SYNC and QUERY."""
    if stack.standin is None or not stack.standin.fulfillment_url:
        return
    from google.cloud import firestore

    from functions.platform import firestore as base

    linked = base.client().collection("users").where(filter=firestore.FieldFilter("linked", "==", True)).stream()
    for snapshot in linked:
        if not stack.standin.link(snapshot.id, sync=True):
            stack.console.say(f"  {snapshot.id}: linked, but SYNC failed: {stack.standin.sync_problem(snapshot.id)}")


def start_autosave(stack: Stack) -> None:
    """Exports the data every AUTOSAVE_S, for a stack that is killed without the chance to save it."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(AUTOSAVE_S):
            stack.save()

    threading.Thread(target=run, name="stack-autosave", daemon=True).start()
    stack.closers.insert(0, stop.set)  # closed last: the final save is the stop's own


def describe(stack: Stack) -> None:
    """The example commands printed once everything runs."""
    demo = stack.demo
    user, token = demo["user"], demo["token"]
    url = stack.urls["fulfillment"]
    python = ".venv/bin/python -m functions"
    notes = []
    if stack.standin is not None:
        notes += [f"Google Home page: {stack.standin.url}/  (what Google holds, live; controls act as Google)", ""]
    notes += [
        f"Demo user: {user} (sign-in {demo['email']} / {demo['password']}; devices from "
        f"{DEMO_DEVICES.relative_to(ROOT)}; the front door's PIN is {DEMO_PIN})",
        f"Access token (24 h): {token}",
        "",
        "SYNC, the way Google asks:",
        f"  curl -s {url} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
        '    -d \'{"requestId": "r1", "inputs": [{"intent": "action.devices.SYNC"}]}\'',
        "",
        "Act as Google (through the stand-in, for the demo user unless --user; `--help` for more):",
        f"  {python} google sync",
        f"  {python} google query",
        f"  {python} google execute --id desk-lamp --command OnOff --params '{{\"on\": true}}'",
        f"  {python} google state          # what HomeGraph (the stand-in) holds",
    ]
    if stack.eventarc is not None:
        notes += [
            "",
            "The round trip: a device added in Firestore -> Request Sync -> SYNC -> reported state:",
            f"  echo {shlex.quote(json.dumps(PORCH_LIGHT))} | \\",
            f"    {python} devices add --user {user} --file -",
            f"  {python} google calls --method requestSync",
            f"  {python} google state",
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
        f"The operators' CLI finds this stack by itself: {python} devices list --user {user}",
    ]
    stack.notes += notes


PIECES: list[Callable[[Stack], None]] = [
    prepare_data,
    start_eventarc,
    start_emulators,
    create_topics,
    start_homegraph,
    start_device_cloud,
    start_functions,
    connect_triggers,
    seed_demo,
    link_users,
    start_autosave,
    describe,
]


def clean_after_a_gone_stack(console: Console) -> None:
    """A record whose stack is gone (killed, or its terminal closed before it could clean up): its leftovers are
    ended and the record removed, so the ports are free again."""
    record = local_stack.stale()
    if record is None:
        return
    ended = local_stack.end_leftovers(record)
    with contextlib.suppress(FileNotFoundError):
        local_stack.record_path().unlink()
    console.say(
        f"A stack that did not stop cleanly (pid {record.get('pid')}) left {len(ended)} process(es) running"
        + (": ended them." if ended else ".")
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="start from nothing: drop the data of earlier runs")
    parser.add_argument("--quiet", action="store_true", help="print the banner alone, no line per request")
    parser.add_argument("--verbose", action="store_true", help="also print every line the functions log")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(quiet=args.quiet, verbose=args.verbose)
    running = local_stack.running()
    if running:
        console.say(f"The local stack already runs (pid {running['pid']}); its URLs:")
        for name, url in running.get("urls", {}).items():
            console.say(f"  {name:<24} {url}")
        console.say("Stop it with Ctrl-C in its terminal, then start again.")
        return 1
    clean_after_a_gone_stack(console)
    local_stack.state_dir().mkdir(parents=True, exist_ok=True)
    local_stack.record_path().write_text(json.dumps({"pid": os.getpid(), "urls": {}}))
    stack = Stack(console=console, fresh=args.fresh, reaper=Reaper())

    def interrupt(signum: int, _frame: Any) -> None:
        # Only the first signal counts: a second one must not cut the clean-up short.
        for name in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(name, signal.SIG_IGN)
        raise KeyboardInterrupt

    for name in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(name, interrupt)
    started = time.monotonic()
    try:
        if not args.quiet:
            console.say(f"Starting the local stack (project {PROJECT}; --fresh: {args.fresh}) ...")
        for piece in PIECES:
            piece(stack)
        stack.record()
        data = "kept from the last run" if stack.imported else "new"
        console.say(
            f"\nLocal stack is up in {time.monotonic() - started:.1f} s (project {PROJECT}). "
            f"Logs in {shown_path(local_stack.state_dir())}; data {data}, in {shown_path(stack.data_dir)} "
            "(`make up FRESH=1` starts clean)."
        )
        for name, url in stack.urls.items():
            console.say(f"  {name:<24} {url}")
        console.say()
        for note in stack.notes:
            console.say(note)
        console.say("\nCtrl-C stops everything." + ("" if args.quiet else " Requests and events:"))
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        failed = [name for name, p in stack.processes.items() if p.poll() is not None]
        logs = shown_path(local_stack.state_dir())
        console.say(f"{', '.join(failed)} stopped unexpectedly; see {logs}/*.log", "error")
        return 1
    except KeyboardInterrupt:
        console.say("\nStopping ...")
        return 0
    except (RuntimeError, emulators.EmulatorUnavailable) as problem:
        console.say(f"error: {problem}", "error")
        return 1
    finally:
        for name in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(name, signal.SIG_IGN)
        stack.stop()
        console.say("Stopped.")


if __name__ == "__main__":
    raise SystemExit(main())
