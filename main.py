"""Deployed Cloud Functions entry points (functions-framework --target NAME)."""

from functions.entrypoints.authorize import authorize
from functions.entrypoints.fulfillment import fulfillment
from functions.entrypoints.report_state import report_state
from functions.entrypoints.token import token

__all__ = ["authorize", "fulfillment", "report_state", "token"]
