"""Builds the Report State pipeline (the Reporter) from settings and adapters: once per instance, on first use.

One Reporter per instance: its in-process coordination is what lets invocations of one instance share a flush.
The Firestore adapter and the HomeGraph client load when the Reporter is first needed, not at import.
"""

from __future__ import annotations

import threading

from functions.core.homegraph import HomeGraph
from functions.platform import config
from functions.reporting.model import Settings
from functions.reporting.pipeline import Reporter
from functions.reporting.rejections import Rejections

# Leaves room for the HomeGraph calls of one flush with all their retries (the client's RetryPolicy).
LEASE_MARGIN_MS = 5_000

_reporter: Reporter | None = None
_rejections: Rejections | None = None
_lock = threading.Lock()


def settings() -> Settings:
    from functions.core.homegraph import RetryPolicy

    attempts, base_s, cap_s = config.homegraph_retry()
    call_worst_case_s = RetryPolicy(attempts, base_s, cap_s).worst_case_s(config.homegraph_timeout_s())
    window_ms = config.report_window_ms()
    return Settings(
        window_ms=window_ms,
        wait_budget_s=config.report_wait_budget_s(),
        max_message_age_s=config.report_max_message_age_s(),
        initial_report_delay_s=config.initial_report_delay_s(),
        lease_ms=window_ms + int(call_worst_case_s * 1000) + LEASE_MARGIN_MS,
        resend_after_s=config.homegraph_timeout_s(),
    )


def reporter() -> Reporter:
    """The instance's Reporter, built on the first call (thread-safe)."""
    global _reporter
    with _lock:
        if _reporter is None:
            from functions.reporting.store import FirestoreReportStore

            _reporter = Reporter(FirestoreReportStore(), _homegraph, settings())
        return _reporter


def _homegraph() -> HomeGraph:
    from functions.platform.homegraph import default_client

    return default_client()


def rejections() -> Rejections:
    """Where refused state messages go (REJECTED_TOPIC); the Pub/Sub client loads on the first rejection."""
    global _rejections
    with _lock:
        if _rejections is None:
            from functions.platform.pubsub import default_publisher

            _rejections = Rejections(default_publisher, config.rejected_topic)
        return _rejections
