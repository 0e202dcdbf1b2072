"""The Report State hooks every trait has (follow-up result and failure, completion notification): their
defaults on the base class, and which registered traits override them."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from functions.core import traits
from functions.core.schema import errors as schema_errors
from functions.core.schema import obj
from functions.core.traits.base import Trait
from tests.schema_oracle import oracle

TRAIT_NAMES = [t.name for t in traits.all_traits()]
# The traits whose commands may answer PENDING and complete with a follow-up, and the one whose state
# change announces itself; any other trait keeps the base class's defaults.
FOLLOW_UP_TRAITS = {"LockUnlock", "NetworkControl", "OpenClose"}
COMPLETION_TRAITS = {"RunCycle"}


class Plain(Trait):
    """A trait that declares nothing but its name (never registered)."""

    name = "Plain"


class WithFollowUps(Trait):
    name = "WithFollowUps"
    follow_up_schema: ClassVar[dict[str, Any] | None] = obj()


def overrides(trait: Trait, hook: str) -> bool:
    return getattr(type(trait), hook).__func__ is not getattr(Trait, hook).__func__


def test_the_defaults_send_nothing() -> None:
    assert Plain.sends_follow_ups() is False
    assert Plain.follow_up_payload("t", {}, {}) is None
    assert Plain.completion_notification({"x": 1}, {"x": 2}) is None


def test_declaring_a_follow_up_schema_is_what_makes_a_trait_send_follow_ups() -> None:
    assert WithFollowUps.sends_follow_ups() is True


def test_the_shared_failure_is_keyed_by_the_trait_and_spelled_as_before() -> None:
    failure = WithFollowUps.follow_up_failure("tok", "deviceOffline")
    # The serialized form is what HomeGraph receives: same keys, same order as every trait sent before.
    assert json.dumps(failure) == (
        '{"WithFollowUps": {"priority": 0, "followUpResponse": '
        '{"status": "FAILURE", "errorCode": "deviceOffline", "followUpToken": "tok"}}}'
    )


@pytest.mark.parametrize("name", TRAIT_NAMES)
def test_a_trait_sends_follow_ups_exactly_when_it_builds_them(name: str) -> None:
    trait = traits.get(name)
    assert trait is not None
    assert trait.sends_follow_ups() is (name in FOLLOW_UP_TRAITS)
    assert overrides(trait, "follow_up_payload") is trait.sends_follow_ups()
    if not trait.sends_follow_ups():
        assert trait.follow_up_payload("t", {}, {}) is None


@pytest.mark.parametrize("name", sorted(FOLLOW_UP_TRAITS))
def test_every_follow_up_failure_validates_against_ours_and_googles_schema(name: str) -> None:
    trait = traits.get(name)
    assert trait is not None
    assert trait.follow_up_schema is not None
    failure = trait.follow_up_failure("t1", "transientError")
    assert failure == {
        name: {
            "priority": 0,
            "followUpResponse": {"status": "FAILURE", "errorCode": "transientError", "followUpToken": "t1"},
        }
    }
    assert schema_errors(trait.follow_up_schema, failure) == []
    oracle().assert_valid(oracle().follow_up_schema(name), failure, f"{name} follow-up failure")


@pytest.mark.parametrize("name", TRAIT_NAMES)
def test_only_the_traits_that_announce_completions_override_the_default(name: str) -> None:
    trait = traits.get(name)
    assert trait is not None
    assert overrides(trait, "completion_notification") is (name in COMPLETION_TRAITS)
    if name not in COMPLETION_TRAITS:
        assert trait.completion_notification({}, {}) is None
