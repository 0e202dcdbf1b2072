"""Deployed Cloud Functions entry points (functions-framework --target NAME)."""

from functions.fulfillment.entry import fulfillment
from functions.linking.authorize import authorize
from functions.linking.token import token
from functions.reporting.entry import report_state
from functions.request_sync.entry import sync_on_device_change

__all__ = ["authorize", "fulfillment", "report_state", "sync_on_device_change", "token"]
