"""The fulfillment's warm-up (functions/fulfillment/wiring.py) and gunicorn's fork: a worker forked while the
warm-up still builds (past WARM_UP_FORK_WAIT_S) must not inherit the locks the parent's thread holds."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest

from functions.fulfillment import wiring
from functions.platform import firestore as platform_firestore


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_worker_forked_during_a_slow_warm_up_builds_its_own_service(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = os.getpid()
    in_the_parent, in_the_child = object(), object()
    building, release = threading.Event(), threading.Event()

    def build() -> Any:
        with platform_firestore._client_lock:  # as the Firestore client's own build would
            if os.getpid() == parent:
                building.set()
                release.wait(10)
                return in_the_parent
            return in_the_child

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-warm-up")
    monkeypatch.setattr(wiring, "build", build)
    monkeypatch.setattr(wiring, "WARM_UP_FORK_WAIT_S", 0.05)
    monkeypatch.setattr(wiring, "_service", None)
    monkeypatch.setattr(wiring, "_lock", threading.Lock())
    monkeypatch.setattr(platform_firestore, "_client_lock", threading.Lock())
    thread = wiring.warm_up_in_background()
    assert thread is not None
    assert building.wait(5)
    child = os.fork()
    if child == 0:  # the worker: its first request must get a service of its own, at once
        signal.alarm(5)
        os._exit(0 if wiring.service() is in_the_child else 1)
    release.set()
    thread.join(5)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert wiring.service() is in_the_parent
