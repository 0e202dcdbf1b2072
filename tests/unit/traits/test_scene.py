"""Scene: activation always, cancellation only for reversible scenes."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.errors import CommandError, InvalidDevice
from tests.schema_oracle import oracle
from tests.unit.traits.media_helpers import apply, register, run


@pytest.mark.parametrize("attributes", [{}, {"sceneReversible": False}, {"sceneReversible": True}])
def test_any_scene_can_be_activated(attributes: dict[str, Any]) -> None:
    scene = register(["Scene"], attributes)
    effect = run(scene, "ActivateScene", {"deactivate": False})
    assert effect.state == {}
    assert apply(scene, effect).query_states() == {}


def test_a_reversible_scene_can_be_cancelled() -> None:
    scene = register(["Scene"], {"sceneReversible": True})
    assert run(scene, "ActivateScene", {"deactivate": True}).state == {}


@pytest.mark.parametrize("attributes", [{}, {"sceneReversible": False}])
def test_cancelling_a_scene_that_is_not_reversible_is_not_available(attributes: dict[str, Any]) -> None:
    scene = register(["Scene"], attributes)
    with pytest.raises(CommandError) as refused:
        run(scene, "ActivateScene", {"deactivate": True})
    assert refused.value.code == "actionNotAvailable"
    assert refused.value.code in oracle().error_codes()


@pytest.mark.parametrize("params", [{}, {"deactivate": "no"}, {"deactivate": False, "scene": "party"}])
def test_malformed_params_are_a_protocol_error(params: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as refused:
        run(register(["Scene"], {}), "ActivateScene", params)
    assert refused.value.code == "protocolError"


def test_a_scene_keeps_no_state() -> None:
    scene = register(["Scene"], {"sceneReversible": True})
    assert scene.state == {}
    with pytest.raises(InvalidDevice, match=r"state\.active"):
        register(["Scene"], {}, {"active": True})
