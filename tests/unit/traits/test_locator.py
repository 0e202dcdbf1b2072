"""Locator: an alert is generated unless the request silences one; nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.core.errors import CommandError
from functions.core.traits.base import CommandContext, Effect
from functions.core.traits.locator import Locator
from tests.schema_oracle import oracle

COMMAND = "action.devices.commands.Locate"


def locate(params: dict[str, Any]) -> Effect:
    return Locator().execute(CommandContext("p1", COMMAND, params, {}, {}, 0))


def google_results() -> dict[str, Any]:
    # Google's index.yaml for Locator does not reference its results schema, so it is read directly.
    schema: dict[str, Any] = json.loads(
        (oracle().root / "traits" / "locator" / "locate.results.schema.json").read_text()
    )
    return schema


@pytest.mark.parametrize(
    ("params", "alert"),
    [({}, True), ({"silence": False}, True), ({"silence": False, "lang": "de"}, True), ({"silence": True}, False)],
)
def test_locate_reports_whether_an_alert_was_generated(params: dict[str, Any], alert: bool) -> None:
    effect = locate(params)
    assert effect.results == {"generatedAlert": alert}
    assert effect.state == {}
    oracle().assert_valid(google_results(), effect.results, "Locate results")


def test_locate_has_no_state() -> None:
    assert Locator.state_keys({}) == frozenset()


@pytest.mark.parametrize("params", [{"silence": "yes"}, {"volume": 3}])
def test_bad_params_are_protocol_errors(params: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as raised:
        locate(params)
    assert raised.value.code == "protocolError"
