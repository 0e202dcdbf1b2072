"""The fulfillment Google Home calls (SYNC, QUERY, EXECUTE, DISCONNECT): entry.fulfillment, built in wiring.

Public API for other features: `FirestoreFulfillmentStore` (the user's link state: linking marks a user linked
when it issues tokens). Loaded on first use, so importing this package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.fulfillment.store import FirestoreFulfillmentStore

__all__ = ["FirestoreFulfillmentStore"]


def __getattr__(name: str) -> Any:
    if name == "FirestoreFulfillmentStore":
        from functions.fulfillment.store import FirestoreFulfillmentStore

        return FirestoreFulfillmentStore
    raise AttributeError(name)
