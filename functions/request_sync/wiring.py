"""Builds the Request Sync service from settings and adapters: once per instance, on the first event."""

from __future__ import annotations

import threading

from functions.platform import config
from functions.request_sync.service import RequestSyncService, Settings

_service: RequestSyncService | None = None
_lock = threading.Lock()


def service() -> RequestSyncService:
    """Concurrent first events share one service (and its HomeGraph client)."""
    global _service
    with _lock:
        if _service is None:
            from functions.platform.homegraph import default_client
            from functions.request_sync.ledger_store import FirestoreSyncLedger

            homegraph = default_client()
            settings = Settings(
                window_s=config.request_sync_window_s(),
                owner_budget_s=config.request_sync_owner_budget_s(),
                max_event_age_s=config.request_sync_max_event_age_s(),
                call_budget_s=homegraph.retry.worst_case_s(homegraph.timeout_s),
            )
            _service = RequestSyncService(FirestoreSyncLedger(), homegraph, settings)
        return _service
