"""Pub/Sub-triggered functions, locally: topics and push subscriptions on the Pub/Sub emulator, a function served in
a thread that counts its deliveries, and a push relay with production-like concurrency (tests, benchmarks).

The emulator's own push delivers at most two messages of a subscription at a time (measured: 50 pushes to an
endpoint that takes 1 s took 24 s) and redelivers a failed push about a second later. Production push delivers
many at once, so the benchmark uses `PushRelay`: a streaming pull that POSTs each message to the function in the
push format (`{"message": {...}, "subscription": ...}`), `concurrency` at a time, acknowledging on 2xx and
nacking otherwise (redelivery), like a push subscription.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


def publisher() -> Any:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.PublisherClient()


def subscriber() -> Any:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.SubscriberClient()


def create_topic(project: str, topic: str, client: Any = None) -> str:
    """The topic (kept if it exists); `client`: a publisher to reuse (each new one costs a gRPC channel)."""
    from google.api_core import exceptions as google_errors

    path = f"projects/{project}/topics/{topic}"
    with contextlib.suppress(google_errors.AlreadyExists):
        (client or publisher()).create_topic(name=path)
    return path


def create_subscription(
    project: str,
    topic: str,
    name: str,
    push_endpoint: str | None = None,
    ack_deadline_s: int = 60,
    client: Any = None,
) -> str:
    """A pull subscription, or a push one to `push_endpoint` (Pub/Sub's wrapped push format); `client`: a
    subscriber to reuse."""
    path = f"projects/{project}/subscriptions/{name}"
    request: dict[str, Any] = {
        "name": path,
        "topic": f"projects/{project}/topics/{topic}",
        "ack_deadline_seconds": ack_deadline_s,
    }
    if push_endpoint:
        request["push_config"] = {"push_endpoint": push_endpoint}
    (client or subscriber()).create_subscription(request=request)
    return path


def delete(project: str, topic: str, subscriptions: Iterable[str]) -> None:
    from google.api_core import exceptions as google_errors

    client = subscriber()
    for name in subscriptions:
        with contextlib.suppress(google_errors.NotFound):
            client.delete_subscription(subscription=f"projects/{project}/subscriptions/{name}")
    with contextlib.suppress(google_errors.NotFound):
        publisher().delete_topic(topic=f"projects/{project}/topics/{topic}")


@dataclass
class Deliveries:
    """What a served function answered, in order: (status, path, finished at)."""

    answers: list[tuple[int, str, float]] = field(default_factory=list)
    in_flight: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def count(self, status: int | None = None) -> int:
        with self.changed:
            return sum(1 for answer in self.answers if status is None or answer[0] == status)

    def wait(self, ok: int, timeout_s: float = 30.0, quiet_s: float = 0.0) -> bool:
        """Until `ok` deliveries were answered 2xx, nothing is in flight, and nothing came for `quiet_s`."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                done = sum(1 for answer in self.answers if 200 <= answer[0] < 300)
                last = self.answers[-1][2] if self.answers else 0.0
                if done >= ok and self.in_flight == 0 and time.time() - last >= quiet_s:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(min(remaining, max(quiet_s, 0.05)))


class CountingApp:
    """WSGI middleware recording each request's answer."""

    def __init__(self, app: Any, deliveries: Deliveries) -> None:
        self.app = app
        self.deliveries = deliveries

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        status_code = [500]

        def recording_start(status: str, headers: Any, *args: Any) -> Any:
            status_code[0] = int(status.split()[0])
            return start_response(status, headers, *args)

        with self.deliveries.changed:
            self.deliveries.in_flight += 1
        try:
            return list(self.app(environ, recording_start))
        finally:
            with self.deliveries.changed:
                self.deliveries.in_flight -= 1
                self.deliveries.answers.append((status_code[0], environ.get("PATH_INFO", ""), time.time()))
                self.deliveries.changed.notify_all()


class ServedFunction:
    """A functions-framework app served by werkzeug in a thread of this process."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        from werkzeug.serving import make_server

        self.deliveries = Deliveries()
        self._server = make_server(host, 0, CountingApp(app, self.deliveries), threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="function", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def push_body(message: Any, subscription: str) -> bytes:
    """The body a push subscription POSTs for a received message (google.pubsub_v1 PubsubMessage)."""
    published = message.publish_time
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "attributes": dict(message.attributes),
                "messageId": message.message_id,
                "publishTime": published.isoformat().replace("+00:00", "Z"),
            },
            "subscription": subscription,
        }
    ).encode()


class PushRelay:
    """Pulls a subscription and pushes each message to `endpoint`, `concurrency` at a time (see module docstring)."""

    def __init__(self, subscription: str, endpoint: str, concurrency: int = 64, timeout_s: float = 120.0) -> None:
        self.subscription = subscription
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="push")
        self._future: Any = None
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()
        self._concurrency = concurrency

    def start(self) -> PushRelay:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        flow = pubsub_v1.types.FlowControl(max_messages=self._concurrency * 2)
        self._future = subscriber().subscribe(self.subscription, self._received, flow_control=flow)
        return self

    def _received(self, message: Any) -> None:
        self._pool.submit(self._push, message)

    def _push(self, message: Any) -> None:
        request = urllib.request.Request(  # noqa: S310 - a local function
            self.endpoint,
            data=push_body(message, self.subscription),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            message.ack()
        else:
            message.nack()

    def stop(self) -> None:
        if self._future is not None:
            self._future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def publish_all(topic_path: str, messages: Iterable[tuple[bytes, Mapping[str, str]]]) -> list[str]:
    client = publisher()
    futures = [client.publish(topic_path, data, **dict(attributes)) for data, attributes in messages]
    return [str(future.result(timeout=60)) for future in futures]
