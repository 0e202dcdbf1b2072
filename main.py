"""Deployed Cloud Functions entry points (functions-framework --target NAME).

Each name is resolved when first asked for (PEP 562), so a function's instance imports its own module only:
functions-framework looks the target up with getattr, and a fulfillment instance never loads linking, reporting
or the triggers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.fulfillment.entry import fulfillment
    from functions.linking.authorize import authorize
    from functions.linking.token import token
    from functions.reporting.entry import report_state
    from functions.request_sync.entry import sync_on_device_change

# Entry point -> the module that defines it (tests/unit/test_architecture.py checks this against the imports above).
ENTRY_POINTS = {
    "authorize": "functions.linking.authorize",
    "fulfillment": "functions.fulfillment.entry",
    "report_state": "functions.reporting.entry",
    "sync_on_device_change": "functions.request_sync.entry",
    "token": "functions.linking.token",
}

__all__ = ["authorize", "fulfillment", "report_state", "sync_on_device_change", "token"]


def __getattr__(name: str) -> Any:
    module = ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    function = getattr(importlib.import_module(module), name)
    globals()[name] = function  # later lookups skip this function
    return function
