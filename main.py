"""Deployed Cloud Functions entry points (functions-framework --target NAME)."""

from functions.entrypoints.authorize import authorize
from functions.entrypoints.fulfillment import fulfillment
from functions.entrypoints.report_state import report_state
from functions.entrypoints.sync_on_device_change import sync_on_device_change
from functions.entrypoints.token import token

__all__ = ["authorize", "fulfillment", "report_state", "sync_on_device_change", "token"]
