"""Google's Home Vitals rules, in one place: the gates, which results count as successes, and the log lines (names
and hashes) the functions write so that the figures can be computed from the logs (`python -m functions vitals`,
infra/monitoring.tf's metrics; the fields are documented in docs/vitals.md).

The tables below are Google's, from its Home Vitals page (developers.home.google.com/cloud-to-cloud/analytics/
home-vitals, "What defines a Failure?", and /tools/quality-monitoring-dashboard): an error Google lists is a
failure of the QUERY or EXECUTE success rate unless it is one of the exempted, user-caused codes; a response with a
non-blocking exception (SUCCESS with lowBattery) is a success. `OUR_READING` holds the one code this project also
does not count, and why: it is our reading, not Google's list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

SOURCE = "developers.home.google.com/cloud-to-cloud/analytics/home-vitals"

# Google's gates.
SUCCESS_GATE = 0.995  # calls to HomeGraph, QUERY and EXECUTE: at least this share succeeds
LATENCY_GATE_MS = 1000  # QUERY and EXECUTE: the 90th percentile at most this
LATENCY_PERCENTILE = 90
STATE_ACCURACY_GATE = 0.995  # states HomeGraph holds that equal the device's

# The intents Google grades (as the log lines name them: the last part of action.devices.*).
GRADED_INTENTS = ("QUERY", "EXECUTE")
SUCCESS_STATUSES = frozenset({"SUCCESS", "PENDING"})

# The log lines (infra/monitoring.tf's contract comment names them and their fields).
ANSWER_LINE = "fulfillment answer"
DEVICE_RESULT_LINE = "fulfillment device result"
HOMEGRAPH_CALL_LINE = "homegraph call"
DEVICE_REPORTED_LINE = "device reported"
LINES = (ANSWER_LINE, DEVICE_RESULT_LINE, HOMEGRAPH_CALL_LINE, DEVICE_REPORTED_LINE)

# Google's "Failure exceptions": user-caused errors that do not count against the QUERY and EXECUTE success rates
# (SOURCE). The page lists more codes than the part this table was checked against: add the rest from the page
# when you compare (docs/vitals.md says how to check a code).
EXEMPT_ERROR_CODES: frozenset[str] = frozenset(
    {
        "aboveMaximumLightEffectsDuration",
        "alreadyArmed",
        "alreadyAtMax",
        "alreadyAtMin",
        "alreadyClosed",
        "alreadyDisarmed",
        "alreadyInState",
        "armLevelNeeded",
        "bagFull",
        "belowMinimumLightEffectsDuration",
        "binFull",
        "cancelArmingRestricted",
        "inOffMode",
        "lockedToRange",
        "lowBattery",
        "maxSpeedReached",
        "minSpeedReached",
    }
)
# Codes this project does not count as failures although Google's list does not name them, with the reason.
OUR_READING: Mapping[str, str] = {
    # Secondary user verification: the command waits for the user's confirmation or PIN, and Google sends it again
    # with the answer; the transaction is that second request, which is graded on its own.
    "challengeNeeded": "a two-factor challenge asks the user; the request that answers it is graded",
}


def is_exempt(status: str, error_code: str | None) -> bool:
    """Whether a device result that is not SUCCESS or PENDING still counts as a success."""
    if not error_code:
        return False
    # A non-blocking exception (SOURCE: "a SUCCESS status accompanied by a lowBattery exception") is one of the
    # exempt codes, whatever the status carrying it.
    return error_code in EXEMPT_ERROR_CODES or error_code in OUR_READING


def succeeded(status: str, exempt: bool) -> bool:
    """Google's rule for a QUERY or EXECUTE device result."""
    return status in SUCCESS_STATUSES or exempt


def homegraph_call_succeeded(status: Any) -> bool:
    """Google's rule for a call to HomeGraph: answered with a 2xx status."""
    return isinstance(status, int) and not isinstance(status, bool) and 200 <= status < 300


def short_intent(intent: str | None) -> str:
    """`action.devices.QUERY` as the log lines name it: QUERY."""
    return (intent or "UNKNOWN").rsplit(".", 1)[-1]


def user_hash(agent_user_id: str) -> str:
    """What the logs carry instead of an agentUserId: enough to join a user's lines, not to read the id."""
    return hashlib.sha256(b"agentUserId\x1f" + agent_user_id.encode()).hexdigest()[:16]


# What a state hash ignores: the answer's own status, not the device's state.
_NOT_STATES = frozenset({"status", "errorCode", "debugString"})


def states_hash(states: Mapping[str, Any]) -> str:
    """A short hash of a device's states (QUERY answer or what HomeGraph was last told), equal for equal states:
    key order does not matter, and 21.0 equals 21 (Firestore and JSON may write either)."""
    canonical = json.dumps(
        _canonical({key: value for key, value in states.items() if key not in _NOT_STATES}),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value
