"""`python -m functions devicecloud simulate`: a maker's device cloud on this machine, built on the client for device
clouds (devicecloud/), so that every backend works end to end locally. `make up` runs it (`start_in_stack`).

    devicecloud simulate [--webhook] [--port P] [--delay S] [--failure-rate R] [--jam-rate R] [--seed N]

It takes the commands of "pubsub" devices from the commands topic (its own pull subscription, created if missing)
and, with --webhook, serves the endpoint of "webhook" devices on --port, refusing every call whose signature does
not check out with WEBHOOK_SECRET. It carries each command out on its simulated device: the device's traits work
out the new state, from the capabilities (attributes) and the state the device is registered with in Firestore,
as a maker's cloud knows its own devices. A quick command is done at once; a long-running one (expectsResult)
finishes --delay seconds later, completed with a state message that carries its commandId. With --failure-rate a
command fails at that rate (transientError, a lock's lockFailure or unlockFailure; a quick command of a "pubsub"
device fails by reporting the state it stayed in), and with --jam-rate a lock jams (deviceJammingDetected, and the
lock reports isJammed). Where the emulators are comes from the environment or, as for `python -m functions
google ...`, from the local stack's record (.local-stack/stack.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import secrets
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devicecloud import Command, DeviceCloud, WebhookVerificationError, verify_webhook
from functions.core import errors
from functions.core import traits as trait_registry
from functions.core.commands import PENDING_TIMEOUTS_KIND, virtual_result
from functions.core.errors import CommandError
from functions.core.state_messages import KIND_ATTRIBUTE
from functions.core.traits.base import CommandContext
from functions.platform import config

log = logging.getLogger("devicecloud.simulator")

HOST = "127.0.0.1"
DEFAULT_PORT = 8087
SUBSCRIPTION = "device-cloud-simulator"
WEBHOOK_PATH = "/webhook"
LOCK = "action.devices.commands.LockUnlock"
# The local stack's stand-in for Cloud Scheduler's minute (infra/scheduler.tf): pending commands given up.
SWEEP_EVERY_S = 30.0
READY = "device cloud simulator ready"


class Simulator:
    """Simulated devices, by user and device id: their state, worked out by their traits."""

    def __init__(
        self,
        cloud: DeviceCloud,
        *,
        delay_s: float = 1.0,
        failure_rate: float = 0.0,
        jam_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.cloud = cloud
        self.delay_s = delay_s
        self.failure_rate = failure_rate
        self.jam_rate = jam_rate
        self._random = random.Random(seed)  # noqa: S311 - simulated failures, not secrets
        self._devices: dict[tuple[str, str], dict[str, Any]] = {}  # (user, device) -> {"attributes", "state"}
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []

    # the two ways in

    def on_command(self, command: Command) -> None:
        """A command of a "pubsub" device, from the commands topic."""
        log.info("command %s %s for %s", command.command_id, command.name, command.device_id)
        changes, error = self._work_out(command.agent_user_id, command.device_id, command.command, command.params)
        if command.expects_result:
            self._finish_later(
                command.command_id,
                command.agent_user_id,
                command.device_id,
                command.command,
                command.params,
                changes,
                error,
            )
            return
        # Answered SUCCESS already, with the state stored: a device that did not do it says what it really is.
        if error is None and not self._chance(self.failure_rate):
            self._apply(command.agent_user_id, command.device_id, changes)
            return
        stayed = self._state(command.agent_user_id, command.device_id)
        self.cloud.publish_state(command.agent_user_id, command.device_id, stayed)

    def on_webhook(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A webhook call: every command's result, long-running ones PENDING (completed later)."""
        user = str(body["agentUserId"])
        results: list[dict[str, Any]] = []
        for command in body["commands"]:
            command_id, device_id = str(command["commandId"]), str(command["deviceId"])
            name, params = str(command["command"]), dict(command.get("params") or {})
            changes, error = self._work_out(user, device_id, name, params)
            if command.get("expectsResult"):
                results.append({"commandId": command_id, "status": "PENDING"})
                self._finish_later(command_id, user, device_id, name, params, changes, error)
            elif error is not None or self._chance(self.failure_rate):
                results.append({"commandId": command_id, "status": "ERROR", "errorCode": error or "transientError"})
            else:
                self._apply(user, device_id, changes)
                results.append({"commandId": command_id, "status": "SUCCESS", "states": changes})
        return {"results": results}

    # the devices

    def _device(self, user: str, device_id: str) -> dict[str, Any]:
        with self._lock:
            known = self._devices.get((user, device_id))
        if known is not None:
            return known
        document: dict[str, Any] = {}
        with contextlib.suppress(Exception):  # no Firestore to ask: a device without capabilities
            from functions.fulfillment.store import FirestoreDeviceRegistry

            document = FirestoreDeviceRegistry().get(user, device_id) or {}
        found = {"attributes": dict(document.get("attributes") or {}), "state": dict(document.get("state") or {})}
        with self._lock:
            return self._devices.setdefault((user, device_id), found)

    def _state(self, user: str, device_id: str) -> dict[str, Any]:
        device = self._device(user, device_id)
        with self._lock:
            return dict(device["state"])

    def _apply(self, user: str, device_id: str, changes: Mapping[str, Any]) -> None:
        device = self._device(user, device_id)
        with self._lock:
            device["state"].update(changes)

    def _work_out(
        self, user: str, device_id: str, command: str, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """The state changes the command makes on the device, or the error code the device answers."""
        trait = trait_registry.for_command(command)
        if trait is None:
            return {}, errors.FUNCTION_NOT_SUPPORTED
        device = self._device(user, device_id)
        now_ms = int(time.time() * 1000)
        context = CommandContext(device_id, command, params, device["attributes"], self._state(user, device_id), now_ms)
        try:
            effect = trait.execute(context)
        except CommandError as refused:
            return {}, refused.code
        return virtual_result(command, params, effect, now_ms), None

    # long-running commands

    def _finish_later(
        self,
        command_id: str,
        user: str,
        device_id: str,
        command: str,
        params: Mapping[str, Any],
        changes: dict[str, Any],
        error: str | None,
    ) -> None:
        def finish() -> None:
            try:
                if error is None and command == LOCK and self._chance(self.jam_rate):
                    self._apply(user, device_id, {"isJammed": True})
                    jammed = {"isJammed": True}
                    self.cloud.complete(command_id, user, device_id, jammed, error_code="deviceJammingDetected")
                elif error is not None or self._chance(self.failure_rate):
                    code = error or _failure_code(command, params)
                    self.cloud.complete(command_id, user, device_id, {}, error_code=code)
                else:
                    self._apply(user, device_id, changes)
                    self.cloud.complete(command_id, user, device_id, changes)
                log.info("command %s finished", command_id)
            except Exception:
                log.exception("command %s could not be completed", command_id)

        timer = threading.Timer(self.delay_s, finish)
        timer.daemon = True
        timer.start()
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]

    def _chance(self, rate: float) -> bool:
        with self._lock:
            return rate > 0 and self._random.random() < rate

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()


def _failure_code(command: str, params: Mapping[str, Any]) -> str:
    if command == LOCK:
        return "lockFailure" if params.get("lock") else "unlockFailure"
    return "transientError"


# the webhook endpoint


def serve_webhook(simulator: Simulator, secret: str, host: str = HOST, port: int = 0) -> ThreadingHTTPServer:
    """The "webhook" devices' endpoint (POST /webhook), in a thread; every call's signature is checked first."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                verify_webhook(dict(self.headers.items()), body, secret)
            except WebhookVerificationError as refused:
                log.warning("webhook call refused: %s", refused)
                self._answer(401, {"error": str(refused)})
                return
            try:
                answer = simulator.on_webhook(json.loads(body))
            except (ValueError, KeyError, TypeError) as problem:
                self._answer(400, {"error": f"not a webhook call: {problem}"})
                return
            self._answer(200, answer)

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="webhook", daemon=True).start()
    return server


# the command


def _use_stack_environment() -> None:
    """The local stack's emulators and project, unless the environment already names them."""
    from tools.google_cli import stack

    for name, value in stack().get("env", {}).items():
        if name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
            os.environ.setdefault(name, value)


def ensure_subscription(cloud: DeviceCloud, topic: str, subscription: str) -> None:
    """The simulator's pull subscription of the commands topic (a maker creates its own once, with gcloud)."""
    from google.api_core import exceptions as google_errors

    with contextlib.suppress(google_errors.AlreadyExists):
        cloud.subscriber().create_subscription(
            request={
                "name": f"projects/{cloud.project}/subscriptions/{subscription}",
                "topic": f"projects/{cloud.project}/topics/{topic}",
                "ack_deadline_seconds": 60,
            }
        )


def simulate(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    _use_stack_environment()
    cloud = DeviceCloud()
    if not cloud.project:
        from tools.cli import Refused

        raise Refused("no project: set GOOGLE_CLOUD_PROJECT, or start the local stack (make up)")
    simulator = Simulator(
        cloud, delay_s=args.delay, failure_rate=args.failure_rate, jam_rate=args.jam_rate, seed=args.seed
    )
    ensure_subscription(cloud, config.commands_topic(), args.subscription)
    pulling = cloud.subscribe_commands(simulator.on_command, subscription=args.subscription)
    server = None
    where = f"commands from {config.commands_topic()} ({args.subscription})"
    if args.webhook:
        secret = os.environ.get("WEBHOOK_SECRET", "")
        if not secret:
            from tools.cli import Refused

            raise Refused("--webhook needs WEBHOOK_SECRET, the secret the fulfillment signs with")
        server = serve_webhook(simulator, secret, HOST, args.port)
        where += f", webhook at http://{HOST}:{server.server_address[1]}{WEBHOOK_PATH}"
    print(f"{READY}: {where}", flush=True)
    try:
        pulling.result()
    except KeyboardInterrupt:
        pass
    finally:
        pulling.cancel()
        simulator.stop()
        if server is not None:
            server.shutdown()
    return 0


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = groups.add_parser(
        "devicecloud", help="a device cloud on this machine (the local stack runs it)", description=__doc__
    ).add_subparsers(dest="action", required=True)
    run = actions.add_parser("simulate", help="carry out pubsub (and, with --webhook, webhook) devices' commands")
    run.add_argument("--webhook", action="store_true", help="also serve the webhook endpoint (needs WEBHOOK_SECRET)")
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the webhook's port (default {DEFAULT_PORT})")
    run.add_argument("--delay", type=float, default=1.0, help="seconds a long-running command takes (default 1)")
    run.add_argument("--failure-rate", type=float, default=0.0, help="share of commands that fail (0..1)")
    run.add_argument("--jam-rate", type=float, default=0.0, help="share of lock commands that jam the lock (0..1)")
    run.add_argument("--seed", type=int, help="seed of the failures, for a run that repeats")
    run.add_argument("--subscription", default=SUBSCRIPTION, help=f"pull subscription (default {SUBSCRIPTION})")
    run.set_defaults(run=simulate, uses_project=False)  # it finds the stack's emulators itself
    # `devices publish-state`, the other half of acting as a device cloud from the command line.
    from tools import cli_devicecloud

    cli_devicecloud.register(groups)


# the local stack (tools/stack.py runs this as one of its steps)


def start_in_stack(stack: Any) -> None:
    """Starts the simulator beside the local stack's emulators, with its webhook on a free port, and hands
    WEBHOOK_URL and a fresh WEBHOOK_SECRET to the functions started after it; ticks the pending commands' sweep
    as Cloud Scheduler does in production."""
    if "PUBSUB_EMULATOR_HOST" not in stack.env:
        return
    since = time.monotonic()
    port = stack.reserve_port(DEFAULT_PORT)
    url = f"http://{HOST}:{port}{WEBHOOK_PATH}"
    stack.share(WEBHOOK_URL=url, WEBHOOK_SECRET=secrets.token_urlsafe(32))
    command = [sys.executable, "-m", "functions", "devicecloud", "simulate", "--webhook", "--port", str(port)]
    process = stack.launch("devicecloud", command)
    deadline = time.monotonic() + 60
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the device cloud simulator did not start; see {stack.log_path('devicecloud')}")
        time.sleep(0.1)
    stack.up("device cloud simulator", f"http://{HOST}:{port}", since)  # its webhook at WEBHOOK_PATH
    ticker = SweepTicker(stack.env.get("GOOGLE_CLOUD_PROJECT", config.DEFAULT_PROJECT), config.state_topic())
    stack.closers.append(ticker.stop)
    stack.notes += [
        "Device cloud simulator (tools/devicecloud.py, log devicecloud.log): carries out the commands of devices",
        f'  with "backend": "pubsub" (commands topic) or "webhook" ({url}).',
        "",
    ]


class SweepTicker:
    """Publishes the pending commands' sweep (kind=pending-timeouts) on the state topic every SWEEP_EVERY_S."""

    def __init__(self, project: str, topic: str, every_s: float = SWEEP_EVERY_S) -> None:
        self._cloud = DeviceCloud(project, state_topic=topic)
        self._every_s = every_s
        self._stopped = threading.Event()
        threading.Thread(target=self._run, name="sweep-ticker", daemon=True).start()

    def _run(self) -> None:
        path = f"projects/{self._cloud.project}/topics/{self._cloud.state_topic}"
        while not self._stopped.wait(self._every_s):
            with contextlib.suppress(Exception):  # the emulator going away with the stack
                self._cloud.publisher().publish(path, b"{}", **{KIND_ATTRIBUTE: PENDING_TIMEOUTS_KIND}).result(10)

    def stop(self) -> None:
        self._stopped.set()


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0
