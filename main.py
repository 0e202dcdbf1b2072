"""Deployed Cloud Functions entry points (functions-framework --target NAME)."""

from functions.entrypoints.fulfillment import fulfillment

__all__ = ["fulfillment"]
