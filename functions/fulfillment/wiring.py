"""Builds the fulfillment service from settings and adapters: once per instance, in the background at import
(`warm_up_in_background`) or else on the first request."""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable

from functions.core.challenges import PinHasher
from functions.core.commands import Publisher
from functions.fulfillment.service import Fulfillment
from functions.platform import config

log = logging.getLogger(__name__)

# gunicorn forks its worker from the process that imported the function; the fork waits this long for the warm-up,
# because a thread cut off mid-import would leave its import locks held in the worker.
WARM_UP_FORK_WAIT_S = 30.0

_service: Fulfillment | None = None
_lock = threading.Lock()


def service() -> Fulfillment:
    global _service
    with _lock:
        if _service is None:
            _service = build()
        return _service


def warm_up_in_background() -> threading.Thread | None:
    """Builds the service on a daemon thread, so that the first request finds the Firestore client imported and
    built (most of the fulfillment's cold start). Nothing without a project to connect to (tools and tests that
    import the function without an emulator): the build would go looking for production credentials."""
    if config.project_id() is None:
        return None
    thread = threading.Thread(target=_warm_up, name="fulfillment-warm-up", daemon=True)
    thread.start()
    os.register_at_fork(
        before=lambda: _before_fork(thread), after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
    return thread


_warming_at_fork = False


def _before_fork(thread: threading.Thread) -> None:
    global _warming_at_fork
    thread.join(WARM_UP_FORK_WAIT_S)
    if thread.is_alive():  # only ever set here: a process that warmed up twice (tests) has a hook for each
        _warming_at_fork = True


def _after_fork_in_parent() -> None:
    global _warming_at_fork
    _warming_at_fork = False


def _after_fork_in_child() -> None:
    """A warm-up still running at the fork stays behind in the parent, holding the locks it took: the worker
    starts over with its own (else its first request would wait for ever)."""
    global _lock, _service, _warming_at_fork
    if not _warming_at_fork:
        return
    _warming_at_fork = False
    _lock, _service = threading.Lock(), None
    firestore = sys.modules.get("functions.platform.firestore")  # never imported here: the lock may be held
    if firestore is not None:
        firestore.reset_after_fork()


def _warm_up() -> None:
    try:
        service()
    except Exception:  # the first request builds it again, and answers for the failure
        log.warning("the fulfillment could not be built ahead of its first request", exc_info=True)


def build(publisher: Callable[[], Publisher] | None = None) -> Fulfillment:
    """The fulfillment on Firestore, publishing with `publisher` (Pub/Sub's default publisher if None)."""
    from functions.core.challenges import Challenges
    from functions.fulfillment.backends import DeviceBackends
    from functions.fulfillment.initial_report import Background, InitialReportAfterSync
    from functions.fulfillment.pin_store import FirestorePinStore
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.platform.pubsub import default_publisher
    from functions.reporting import FirestoreReportStore

    publisher = publisher or default_publisher
    challenges = Challenges(FirestorePinStore(), _pin_hasher, lambda: config.challenge_lockout_seconds() * 1000)
    # Commands that complete later answer PENDING and go to the device's backend; a SYNC asks for the full
    # report of the user's devices. Both publish on Pub/Sub, whose client loads on the first publish only; SYNC's
    # publish runs in the background (SYNC never waits on Pub/Sub: see initial_report).
    follow_ups = DeviceBackends(
        FirestoreReportStore(),
        publisher,
        state_topic=config.state_topic,
        commands_topic=config.commands_topic,
        virtual_delay_ms=config.virtual_device_delay_ms,
        new_command_id=lambda: uuid.uuid4().hex,
    )
    return Fulfillment(
        InitialReportAfterSync(
            FirestoreFulfillmentStore(), publisher, config.state_topic, Background("initial-report").submit
        ),
        token_cache_ms=config.token_cache_seconds() * 1000,
        challenges=challenges,
        follow_ups=follow_ups,
    )


def _pin_hasher() -> PinHasher:
    # argon2 loads when the first PIN is checked, not at cold start.
    from functions.fulfillment.pin_hashing import Argon2PinHasher

    return Argon2PinHasher()
