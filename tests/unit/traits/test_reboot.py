"""Reboot: a single action that changes nothing Google sees."""

from __future__ import annotations

import pytest

from functions.core.errors import CommandError
from functions.core.traits.base import CommandContext
from functions.core.traits.reboot import Reboot

COMMAND = "action.devices.commands.Reboot"


def test_reboot_succeeds_without_state_or_results() -> None:
    effect = Reboot().execute(CommandContext("r1", COMMAND, {}, {}, {"online": True}, 0))
    assert (effect.state, effect.results, effect.pending) == ({}, {}, False)
    assert Reboot.state_keys({}) == frozenset()
    assert Reboot.attribute_keys() == frozenset()


def test_reboot_takes_no_params() -> None:
    with pytest.raises(CommandError) as raised:
        Reboot().execute(CommandContext("r1", COMMAND, {"delay": 5}, {}, {}, 0))
    assert raised.value.code == "protocolError"
