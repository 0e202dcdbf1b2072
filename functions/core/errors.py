"""Error codes and the exceptions that carry them.

Device-level codes come from Google's list (platform/errors.schema.json of the smart-home schema); the
request-level ones (`protocolError`, `authFailure`, `deviceOffline`, ...) are the global codes of Google's
fulfillment documentation.
"""

from __future__ import annotations

PROTOCOL_ERROR = "protocolError"
AUTH_FAILURE = "authFailure"
DEVICE_NOT_FOUND = "deviceNotFound"
DEVICE_OFFLINE = "deviceOffline"
FUNCTION_NOT_SUPPORTED = "functionNotSupported"
NOT_SUPPORTED = "notSupported"
VALUE_OUT_OF_RANGE = "valueOutOfRange"
TRANSIENT_ERROR = "transientError"
ACTION_NOT_AVAILABLE = "actionNotAvailable"


class CommandError(Exception):
    """A command cannot be carried out on a device; `code` is what Google shows the user."""

    def __init__(self, code: str, debug: str = "") -> None:
        super().__init__(f"{code}: {debug}" if debug else code)
        self.code = code
        self.debug = debug


class ChallengeNeeded(Exception):
    """The command needs the user's acknowledgement or PIN before it runs (two-factor challenge)."""

    def __init__(self, challenge_type: str, code: str = "challengeNeeded") -> None:
        super().__init__(challenge_type)
        self.challenge_type = challenge_type  # "ackNeeded" | "pinNeeded" | "challengeFailedPinNeeded" | ...
        self.code = code


class InvalidDevice(ValueError):
    """A device definition that Google would refuse; the message names the field."""


class ProtocolError(ValueError):
    """A request that does not follow the fulfillment protocol; the message says where."""
