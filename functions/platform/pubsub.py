"""Publishing to Pub/Sub (google-cloud-pubsub), loaded on the first publish: importing this module is free.

Used by the fulfillment (pending commands, the full report after a SYNC) and by device-cloud tooling. With
PUBSUB_EMULATOR_HOST set the client talks to the emulator; while Firestore is emulated but Pub/Sub is not
(unit and integration tests of other parts), nothing is published at all: `PublishingDisabled` is raised at once
instead of looking for production credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from functions.core.commands import PublishingUnavailable
from functions.platform import config

PUBLISH_TIMEOUT_S = 30.0


class PublishingDisabled(PublishingUnavailable):
    """No Pub/Sub to publish to in this environment (emulated Firestore without a Pub/Sub emulator)."""


class PubSubPublisher:
    def __init__(self, project: str | None = None) -> None:
        self._project = project
        self._client: Any = None
        self._lock = threading.Lock()

    def _publisher(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import pubsub_v1  # type: ignore[attr-defined]

                self._client = pubsub_v1.PublisherClient()
            return self._client

    def topic_path(self, topic: str) -> str:
        project = self._project or config.project_id()
        if not project:
            raise PublishingDisabled("no Google Cloud project configured (GOOGLE_CLOUD_PROJECT)")
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        if not config.pubsub_available():
            raise PublishingDisabled("Firestore is emulated and no Pub/Sub emulator is configured")
        future = self._publisher().publish(self.topic_path(topic), data, **dict(attributes or {}))
        return str(future.result(timeout=PUBLISH_TIMEOUT_S))


_default: PubSubPublisher | None = None
_default_lock = threading.Lock()


def default_publisher() -> PubSubPublisher:
    global _default
    with _default_lock:
        if _default is None:
            _default = PubSubPublisher()
        return _default
