"""Builds the fulfillment service from settings and adapters: once per instance, on the first request."""

from __future__ import annotations

import threading
import uuid

from functions.core.challenges import PinHasher
from functions.fulfillment.service import Fulfillment
from functions.platform import config

_service: Fulfillment | None = None
_lock = threading.Lock()


def service() -> Fulfillment:
    global _service
    with _lock:
        if _service is None:
            _service = _build()
        return _service


def _build() -> Fulfillment:
    from functions.core.challenges import Challenges
    from functions.fulfillment.backends import DeviceBackends
    from functions.fulfillment.initial_report import InitialReportAfterSync
    from functions.fulfillment.pin_store import FirestorePinStore
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.platform.pubsub import default_publisher
    from functions.reporting import FirestoreReportStore

    challenges = Challenges(FirestorePinStore(), _pin_hasher, lambda: config.challenge_lockout_seconds() * 1000)
    # Commands that complete later answer PENDING and go to the device's backend; a SYNC asks for the full
    # report of the user's devices. Both publish on Pub/Sub, whose client loads on the first publish only.
    follow_ups = DeviceBackends(
        FirestoreReportStore(),
        default_publisher,
        state_topic=config.state_topic,
        commands_topic=config.commands_topic,
        virtual_delay_ms=config.virtual_device_delay_ms,
        new_command_id=lambda: uuid.uuid4().hex,
    )
    return Fulfillment(
        InitialReportAfterSync(FirestoreFulfillmentStore(), default_publisher, config.state_topic),
        token_cache_ms=config.token_cache_seconds() * 1000,
        challenges=challenges,
        follow_ups=follow_ups,
    )


def _pin_hasher() -> PinHasher:
    # argon2 loads when the first PIN is checked, not at cold start.
    from functions.fulfillment.pin_hashing import Argon2PinHasher

    return Argon2PinHasher()
