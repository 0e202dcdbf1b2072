"""What the parts of one Reporter share: the store, HomeGraph, the settings and the clocks.

One mutable object, so that the settings of a running Reporter can be changed in one place (tests do), and so that
time and ids are injected once (tests drive them) rather than in every part.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from functions.core.homegraph import HomeGraph
from functions.reporting.model import ReportStore, Settings


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def random_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Runtime:
    store: ReportStore
    homegraph: Callable[[], HomeGraph]  # built on first use
    settings: Settings
    clock_ms: Callable[[], int] = wall_clock_ms
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    new_id: Callable[[], str] = random_id
