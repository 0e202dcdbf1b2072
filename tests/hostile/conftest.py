"""The integration fixtures (real handler, emulator, tokens, devices) for the hostile-input tests."""

from tests.integration.conftest import add_devices, fulfillment_app, google, issue_token

__all__ = ["add_devices", "fulfillment_app", "google", "issue_token"]
