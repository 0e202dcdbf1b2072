"""The requests our stand-in for Google sends (tools/google.py: tests, benchmarks, the `google` command and the
local Google Home page) are the requests Google's schemas describe, with the documented challenge answer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.schema_oracle import EXECUTE_REQUEST_EXTENSIONS, oracle
from tools.google import (
    command_request,
    disconnect_request,
    execute_request,
    execution,
    query_request,
    sync_request,
)

REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sync": ("sync", sync_request()),
    "query": ("query", query_request(["lamp-1", "lock-1"])),
    "disconnect": ("disconnect", disconnect_request()),
    "execute": (
        "execute",
        execute_request(
            [
                (
                    ["lamp-1", "lamp-2"],
                    [execution("OnOff", {"on": True}), execution("BrightnessAbsolute", {"brightness": 40})],
                ),
                (["lock-1"], [execution("LockUnlock", {"lock": True})]),
            ]
        ),
    ),
    "command": ("execute", command_request(["lamp-1"], "OnOff", {"on": False})),
    "acknowledged": ("execute", command_request(["door-1"], "OpenClose", {"openPercent": 100}, ack=True)),
    "pin": ("execute", command_request(["lock-1"], "LockUnlock", {"lock": False}, pin="2468")),
    "follow-up token": ("execute", command_request(["lock-1"], "LockUnlock", {"lock": True}, follow_up_token="t-1")),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_request_we_send_as_google_is_valid_by_google_s_request_schema(name: str) -> None:
    intent, request = REQUESTS[name]
    oracle().assert_valid(oracle().intent(intent, "request"), request, f"{name} request")


def test_the_challenge_answer_is_the_documented_addition_and_nothing_else() -> None:
    """Without the extension the 2021 schema refuses the challenge answer (so the extension is needed), and with it
    a misspelt answer is still refused (so the extension is not a blank cheque)."""
    _, with_pin = REQUESTS["pin"]
    schema = oracle().intent("execute", "request")
    published = oracle().published_intent("execute", "request")
    assert any("challenge" in problem for problem in oracle().problems(published, with_pin))
    assert "challenge" in EXECUTE_REQUEST_EXTENSIONS
    misspelt = command_request(["lock-1"], "LockUnlock", {"lock": False}, pin="2468")
    misspelt["inputs"][0]["payload"]["commands"][0]["execution"][0]["challenge"] = {"pincode": "2468"}
    assert oracle().problems(schema, misspelt)
    empty = command_request(["lock-1"], "LockUnlock", {"lock": False}, pin="2468")
    empty["inputs"][0]["payload"]["commands"][0]["execution"][0]["challenge"] = {}
    assert oracle().problems(schema, empty)
