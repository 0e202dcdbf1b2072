"""Eventarc, locally: Firestore triggers from the Firestore emulator delivered to functions-framework processes.

The Firestore emulator started with `--functions_emulator=HOST:PORT` POSTs each event of a registered trigger to
http://HOST:PORT/functions/projects/{project}/triggers/{triggerId} as a binary-mode CloudEvent, one at a time,
and waits for the answer; it never retries. `LocalEventarc` listens there and behaves like Eventarc instead:
it acknowledges at once, delivers events concurrently to the trigger's destination(s) (round robin, like
instances behind a service), and retries a failed delivery (non-2xx or no answer) with exponential backoff while
the trigger's retry policy allows, like a gen2 function deployed with --retry. Every attempt is recorded.

Triggers are registered in the emulator with POST /emulator/v1/projects/{project}/eventarcTrigger?eventarcTriggerId=ID
and the body firebase-tools sends for v2 Firestore functions (src/emulator/functionsEmulator.ts):
{"eventType", "database", "namespace", "document": {"value": pattern, "matchType": "PATH_PATTERN"}}. The emulator
has no call to remove a trigger, so a trigger stays for the emulator's life; `route(trigger, [])` stops delivering.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WRITTEN = "google.cloud.firestore.document.v1.written"
TRIGGER_PATH = "/functions/projects/"


@dataclass(frozen=True)
class Retry:
    """Eventarc-like redelivery of failed events: `attempts` in all, waits doubling from `min_backoff_s`."""

    attempts: int = 5
    min_backoff_s: float = 0.5
    max_backoff_s: float = 10.0


NO_RETRY = Retry(attempts=1)


@dataclass
class Delivery:
    trigger_id: str
    event_id: str
    document: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    statuses: list[int | None] = field(default_factory=list)  # one per attempt; None: no answer
    done: bool = False
    delivered: bool = False
    finished_at: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "triggerId": self.trigger_id,
            "eventId": self.event_id,
            "document": self.document,
            "statuses": list(self.statuses),
            "done": self.done,
            "delivered": self.delivered,
            "receivedAt": self.received_at,
            "finishedAt": self.finished_at,
        }


@dataclass
class _Route:
    destinations: list[str]
    retry: Retry
    timeout_s: float
    turn: itertools.count[int] = field(default_factory=itertools.count)


class LocalEventarc:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, workers: int = 64) -> None:
        self.host = host
        self.port = port
        self._routes: dict[str, _Route] = {}
        self._deliveries: list[Delivery] = []
        self._lock = threading.Condition()
        self._in_flight = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eventarc")
        self._server: ThreadingHTTPServer | None = None
        # Told of each event once its delivery is over (delivered, or out of attempts): Delivery.summary().
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> LocalEventarc:
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, name="local-eventarc", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    # triggers

    def route(
        self, trigger_id: str, destinations: Sequence[str], retry: Retry = NO_RETRY, timeout_s: float = 300.0
    ) -> None:
        """Where events of `trigger_id` go (several URLs: round robin); an empty list drops them."""
        with self._lock:
            self._routes[trigger_id] = _Route(list(destinations), retry, timeout_s)

    def register_firestore_trigger(
        self,
        emulator_url: str,
        project: str,
        trigger_id: str,
        document: str,
        destinations: Sequence[str],
        *,
        database: str = "(default)",
        namespace: str = "(default)",
        event_type: str = WRITTEN,
        retry: Retry = NO_RETRY,
    ) -> None:
        """Registers the trigger in the Firestore emulator (whose --functions_emulator is this) and routes it."""
        self.route(trigger_id, destinations, retry)
        body = {
            "eventType": event_type,
            "database": database,
            "namespace": namespace,
            "document": {"value": document, "matchType": "PATH_PATTERN" if "{" in document else "EXACT"},
        }
        request = urllib.request.Request(  # noqa: S310 - the local emulator
            f"{emulator_url}/emulator/v1/projects/{project}/eventarcTrigger?eventarcTriggerId={trigger_id}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            pass

    # what happened

    def deliveries(self, trigger_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [d.summary() for d in self._deliveries if trigger_id in (None, d.trigger_id)]

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()

    def wait_idle(self, timeout_s: float = 30.0, quiet_s: float = 0.3) -> bool:
        """Waits until nothing is in flight or waiting for a retry, and no event came for `quiet_s`, counted from the
        call at the earliest: an event the emulator has yet to send for a write just made is waited for."""
        deadline = time.monotonic() + timeout_s
        called_at = time.time()
        with self._lock:
            while True:
                last = max((d.received_at for d in self._deliveries), default=called_at)
                last = max(last, called_at)
                quiet_for = time.time() - last
                if self._in_flight == 0 and quiet_for >= quiet_s:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, quiet_s))

    def wait_for(self, count: int, trigger_id: str | None = None, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Waits until `count` events were received and are done; returns all deliveries."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                mine = [d for d in self._deliveries if trigger_id in (None, d.trigger_id)]
                remaining = deadline - time.monotonic()
                if (len(mine) >= count and all(d.done for d in mine)) or remaining <= 0:
                    return [d.summary() for d in mine]
                self._lock.wait(remaining)

    def wait_for_documents(self, documents: Iterable[str], timeout_s: float = 30.0) -> bool:
        """Waits until each document (a path such as users/u/devices/d) has had an event delivered and done."""
        wanted = set(documents)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                done = {d.document for d in self._deliveries if d.done}
                if all(any(seen == path or seen.endswith(f"/{path}") for seen in done) for path in wanted):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)

    # delivery

    def redeliver(self, event_id: str) -> None:
        """Delivers a received event once more, as Eventarc may (at-least-once delivery)."""
        with self._lock:
            original = next(d for d in self._deliveries if d.event_id == event_id)
        self.receive(original.trigger_id, dict(original.headers), original.body)

    def receive(self, trigger_id: str, headers: dict[str, str], body: bytes) -> int:
        """An event from the emulator: queued for delivery (202), or 404 if the trigger is not routed."""
        with self._lock:
            route = self._routes.get(trigger_id)
            if route is None:
                return 404
            delivery = Delivery(
                trigger_id=trigger_id,
                event_id=headers.get("ce-id", ""),
                document=headers.get("ce-document", headers.get("ce-subject", "")),
                headers=headers,
                body=body,
                received_at=time.time(),
            )
            self._deliveries.append(delivery)
            self._in_flight += 1
            self._lock.notify_all()
        self._pool.submit(self._deliver, delivery, route)
        return 202

    def _deliver(self, delivery: Delivery, route: _Route) -> None:
        try:
            for attempt in range(route.retry.attempts):
                if not route.destinations:
                    break
                destination = route.destinations[next(route.turn) % len(route.destinations)]
                status = _post(destination, delivery.headers, delivery.body, route.timeout_s)
                with self._lock:
                    delivery.statuses.append(status)
                if status is not None and 200 <= status < 300:
                    delivery.delivered = True
                    break
                if attempt + 1 < route.retry.attempts:
                    time.sleep(min(route.retry.max_backoff_s, route.retry.min_backoff_s * 2**attempt))
        finally:
            with self._lock:
                delivery.done = True
                delivery.finished_at = time.time()
                self._in_flight -= 1
                self._lock.notify_all()
                summary, listeners = delivery.summary(), list(self.listeners)
            for listener in listeners:
                with contextlib.suppress(Exception):  # a listener's failure is not the delivery's
                    listener(summary)


def _post(url: str, headers: dict[str, str], body: bytes, timeout_s: float) -> int | None:
    forwarded = {k: v for k, v in headers.items() if k.lower().startswith("ce-") or k.lower() == "content-type"}
    request = urllib.request.Request(url, data=body, headers=forwarded, method="POST")  # noqa: S310 - local functions
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def _handler_for(eventarc: LocalEventarc) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = 404
            if self.path.startswith(TRIGGER_PATH) and "/triggers/" in self.path:
                trigger_id = self.path.split("/triggers/", 1)[1].split("?", 1)[0]
                status = eventarc.receive(trigger_id, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    return Handler
