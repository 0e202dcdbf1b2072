"""Two-factor challenges without I/O: rules and their defaults, PIN checks, the lockout, and the EXECUTE answers."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from functions.core import challenges as policy
from functions.core import tokens
from functions.core import traits as trait_registry
from functions.core.challenges import Challenges, PinRecord
from functions.core.commands import Execution
from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import ChallengeNeeded, CommandError, InvalidDevice
from functions.core.ports import StateWrite
from functions.fulfillment.service import Fulfillment
from tests.fakes.memory import MemoryPinStore, MemoryStore
from tests.schema_oracle import oracle
from tools.google import execute_request, execution

NOW = 1_800_000_000_000
LOCKOUT_MS = 15 * 60 * 1000
USER = "u1"

LOCK: dict[str, Any] = {
    "type": "action.devices.types.LOCK",
    "traits": ["action.devices.traits.LockUnlock"],
    "name": {"name": "Front door"},
    "willReportState": True,
    "state": {"isLocked": True, "isJammed": False},
}
ALARM: dict[str, Any] = {
    "type": "action.devices.types.SECURITYSYSTEM",
    "traits": ["action.devices.traits.ArmDisarm"],
    "name": {"name": "Alarm"},
    "willReportState": True,
    "state": {"isArmed": True, "exitAllowance": 30},
}


def opener(device_type: str) -> dict[str, Any]:
    return {
        "type": f"action.devices.types.{device_type}",
        "traits": ["action.devices.traits.OpenClose"],
        "name": {"name": device_type.title()},
        "willReportState": True,
        "state": {"openPercent": 0},
    }


class FakeHasher:
    """Stands in for argon2 in these tests; counts verifications."""

    def __init__(self) -> None:
        self.verified = 0

    def hash(self, pin: str) -> str:
        return "fake$" + hashlib.sha256(pin.encode()).hexdigest()

    def verify(self, pin_hash: str, pin: str) -> bool:
        self.verified += 1
        return pin_hash == self.hash(pin)


def device(document: dict[str, Any], device_id: str = "d1", **changes: Any) -> Device:
    return parse_device(device_id, new_device_document(device_id, {**copy.deepcopy(document), **changes}))


class Setup:
    def __init__(self) -> None:
        self.pins = MemoryPinStore()
        self.hasher = FakeHasher()
        self.hasher_made = 0
        self.lockout_ms = LOCKOUT_MS
        self.gate = Challenges(self.pins, self._factory, lambda: self.lockout_ms)

    def _factory(self) -> FakeHasher:
        self.hasher_made += 1
        return self.hasher

    def set_pin(self, pin: str, device_id: str = "d1") -> None:
        self.pins.set_pin(USER, device_id, self.hasher.hash(pin), NOW)

    def check(
        self,
        target: Device,
        command: str,
        params: dict[str, Any],
        challenge: dict[str, Any] | None = None,
        now: int = NOW,
    ) -> str:
        """'ok', the challenge type asked for, or the error code."""
        try:
            self.gate.check(USER, target, Execution(f"action.devices.commands.{command}", params, challenge), now)
        except ChallengeNeeded as needed:
            return needed.challenge_type if needed.code == "challengeNeeded" else f"wrong code {needed.code}"
        except CommandError as error:
            return error.code
        return "ok"


@pytest.fixture
def setup() -> Setup:
    return Setup()


# Defaults


def test_unlocking_needs_an_acknowledgement_and_locking_does_not(setup: Setup) -> None:
    lock = device(LOCK)
    assert setup.check(lock, "LockUnlock", {"lock": False}) == "ackNeeded"
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"ack": False}) == "ackNeeded"
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"ack": True}) == "ok"
    assert setup.check(lock, "LockUnlock", {"lock": True}) == "ok"
    assert setup.hasher_made == 0, "no PIN is involved, so the hashing library is never loaded"


def test_disarming_and_cancelling_an_arming_need_a_challenge(setup: Setup) -> None:
    alarm = device(ALARM)
    assert setup.check(alarm, "ArmDisarm", {"arm": False}) == "ackNeeded"
    assert setup.check(alarm, "ArmDisarm", {"arm": True, "cancel": True}) == "ackNeeded"
    assert setup.check(alarm, "ArmDisarm", {"arm": True}) == "ok"
    assert setup.check(alarm, "ArmDisarm", {"arm": True, "cancel": False}) == "ok"


@pytest.mark.parametrize("device_type", ["GARAGE", "GATE"])
def test_opening_a_garage_or_gate_needs_a_challenge_closing_does_not(setup: Setup, device_type: str) -> None:
    door = device(opener(device_type))
    assert setup.check(door, "OpenClose", {"openPercent": 100}) == "ackNeeded"
    assert setup.check(door, "OpenClose", {"openPercent": 0.5}) == "ackNeeded"
    assert setup.check(door, "OpenClose", {"openPercent": 0}) == "ok"
    assert setup.check(door, "OpenCloseRelative", {"openRelativePercent": 20}) == "ackNeeded"
    assert setup.check(door, "OpenCloseRelative", {"openRelativePercent": -20}) == "ok"


@pytest.mark.parametrize("device_type", ["BLINDS", "CURTAIN", "WINDOW", "VALVE"])
def test_other_openers_need_no_challenge_by_default(setup: Setup, device_type: str) -> None:
    assert setup.check(device(opener(device_type)), "OpenClose", {"openPercent": 100}) == "ok"


def test_with_a_pin_set_the_defaults_ask_for_it_and_an_acknowledgement_is_not_enough(setup: Setup) -> None:
    setup.set_pin("2468")
    lock = device(LOCK)
    assert setup.check(lock, "LockUnlock", {"lock": False}) == "pinNeeded"
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"ack": True}) == "pinNeeded"
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "2468"}) == "ok"
    assert setup.check(lock, "LockUnlock", {"lock": True}) == "ok"


# Device configuration


def test_a_device_config_replaces_the_defaults_for_the_commands_it_names(setup: Setup) -> None:
    silent = device(LOCK, challenges={"LockUnlock": {"type": "none"}})
    assert setup.check(silent, "LockUnlock", {"lock": False}) == "ok"
    empty = device(LOCK, challenges={"action.devices.commands.LockUnlock": []})
    assert setup.check(empty, "LockUnlock", {"lock": False}) == "ok"
    both_ways = device(LOCK, challenges={"LockUnlock": {"type": "ack"}})
    assert setup.check(both_ways, "LockUnlock", {"lock": True}) == "ackNeeded"


def test_any_command_can_be_challenged(setup: Setup) -> None:
    camera = {
        "type": "action.devices.types.CAMERA",
        "traits": ["action.devices.traits.OnOff", "action.devices.traits.CameraStream"],
        "attributes": {"cameraStreamSupportedProtocols": ["hls"], "cameraStreamNeedAuthToken": False},
        "name": {"name": "Porch camera"},
        "willReportState": True,
        "challenges": {"OnOff": [{"type": "none", "when": {"on": True}}, {"type": "pinOrAck"}]},
    }
    target = device(camera)
    assert setup.check(target, "OnOff", {"on": True}) == "ok"
    assert setup.check(target, "OnOff", {"on": False}) == "ackNeeded"
    setup.set_pin("97531")
    assert setup.check(target, "OnOff", {"on": False}) == "pinNeeded"


def test_the_first_matching_rule_decides(setup: Setup) -> None:
    rules = [
        {"type": "none", "when": {"openPercent": {"lte": 30}}},
        {"type": "ack", "when": {"openPercent": {"lt": 100}}},
        {"type": "pin"},
    ]
    setup.set_pin("1357")
    garage = device(opener("GARAGE"), challenges={"OpenClose": rules})
    assert setup.check(garage, "OpenClose", {"openPercent": 30}) == "ok"
    assert setup.check(garage, "OpenClose", {"openPercent": 60}) == "ackNeeded"
    assert setup.check(garage, "OpenClose", {"openPercent": 100}) == "pinNeeded"


def test_a_pin_rule_without_a_pin_set_refuses_the_command(setup: Setup) -> None:
    lock = device(LOCK, challenges={"LockUnlock": {"type": "pin"}})
    assert setup.check(lock, "LockUnlock", {"lock": True}, {"ack": True}) == "securityRestriction"


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        (False, False, True),
        (False, 0, False),
        (1, True, False),
        ({"eq": "away"}, "away", True),
        ({"ne": "away"}, "home", True),
        ({"in": ["a", "b"]}, "b", True),
        ({"in": ["a", "b"]}, "c", False),
        ({"gt": 0}, 0, False),
        ({"gte": 0}, 0, True),
        ({"lt": 10}, 9.5, True),
        ({"lte": 10}, 11, False),
        ({"gt": 0}, "5", False),
        ({"gt": 0}, True, False),
    ],
)
def test_conditions(condition: Any, value: Any, expected: bool) -> None:
    assert policy.Rule("ack", {"x": condition}).matches({"x": value}) is expected
    assert policy.Rule("ack", {"x": condition}).matches({}) is False


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ([], "challenges: must be an object"),
        ({"Nope": {"type": "ack"}}, "challenges.Nope: 'Nope' is not a command Google defines"),
        ({"OnOff": {"type": "ack"}}, "challenges.OnOff: 'OnOff' is not a command of this device's traits"),
        ({"LockUnlock": {"type": "maybe"}}, "challenges.LockUnlock.type: must be one of none, ack, pin, pinOrAck"),
        ({"LockUnlock": {}}, "challenges.LockUnlock.type: must be one of"),
        ({"LockUnlock": "pin"}, "challenges.LockUnlock: a rule must be an object"),
        ({"LockUnlock": {"type": "ack", "if": {}}}, "challenges.LockUnlock.if: unknown key"),
        ({"LockUnlock": {"type": "ack", "when": {"locked": False}}}, "when.locked: not a param of"),
        ({"LockUnlock": {"type": "ack", "when": {"followUpToken": "x"}}}, "when.followUpToken: not a param of"),
        ({"LockUnlock": [{"type": "ack", "when": {"lock": {"gt": "x"}}}]}, "challenges.LockUnlock[0].when.lock.gt"),
        ({"LockUnlock": {"type": "ack", "when": {"lock": {"in": []}}}}, "when.lock.in: must be a non-empty list"),
        ({"LockUnlock": {"type": "ack", "when": {"lock": {"like": 1}}}}, "a comparison is one of"),
        ({"LockUnlock": {"type": "ack", "when": {"lock": [True]}}}, "compare with a string, number"),
        ({"LockUnlock": {"type": "ack", "when": []}}, "when: must be an object"),
        (
            {"LockUnlock": {"type": "ack"}, "action.devices.commands.LockUnlock": {"type": "pin"}},
            "configured twice",
        ),
        ({"LockUnlock": [{"type": "ack"}] * 21}, "at most 20 rules"),
    ],
)
def test_invalid_configs_are_refused_naming_the_field(config: Any, expected: str) -> None:
    with pytest.raises(InvalidDevice, match=None) as refused:
        parse_device("d1", {**LOCK, "challenges": config})
    assert expected in str(refused.value)


def test_valid_configs_are_accepted() -> None:
    lock = device(LOCK, challenges={"LockUnlock": [{"type": "pin", "when": {"lock": False}}, {"type": "none"}]})
    assert lock.settings["challenges"]["LockUnlock"][0]["type"] == "pin"
    assert "challenges" not in lock.sync_view(), "the rules are never sent to Google"
    assert lock.with_state({"isLocked": False}).settings == lock.settings


def test_every_default_rule_names_a_real_command_and_param() -> None:
    for rules in (policy.DEFAULT_RULES, policy._OPENING_RULES):
        for command, items in rules.items():
            trait = trait_registry.for_command(command)
            assert trait is not None, command
            params = trait.commands[command].params_schema["properties"]
            for rule in items:
                assert set(rule.when) <= set(params), (command, rule)


# PINs and the lockout


def test_a_wrong_pin_asks_again_and_a_right_one_clears_the_count(setup: Setup) -> None:
    setup.set_pin("2468")
    lock = device(LOCK)
    for expected_failures in (1, 2, 3):
        assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "1111"}) == "challengeFailedPinNeeded"
        record = setup.pins.get(USER, "d1")
        assert record is not None
        assert record.failures == expected_failures
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "2468"}) == "ok"
    record = setup.pins.get(USER, "d1")
    assert record is not None
    assert record.failures == 0


def test_five_wrong_pins_in_a_row_lock_the_device_for_the_window(setup: Setup) -> None:
    setup.set_pin("2468")
    lock = device(LOCK)
    answers = [setup.check(lock, "LockUnlock", {"lock": False}, {"pin": f"000{i}"}) for i in range(5)]
    assert answers == ["challengeFailedPinNeeded"] * 4 + ["tooManyFailedAttempts"]
    verified = setup.hasher.verified
    # Locked: even the right PIN is refused, unchecked, and so is a bare request.
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "2468"}) == "tooManyFailedAttempts"
    assert setup.check(lock, "LockUnlock", {"lock": False}) == "tooManyFailedAttempts"
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "2468"}, NOW + LOCKOUT_MS - 1) == (
        "tooManyFailedAttempts"
    )
    assert setup.hasher.verified == verified
    # Commands that need no challenge still run.
    assert setup.check(lock, "LockUnlock", {"lock": True}) == "ok"
    # The window ends: the count starts again.
    later = NOW + LOCKOUT_MS
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "9999"}, later) == "challengeFailedPinNeeded"
    record = setup.pins.get(USER, "d1")
    assert record is not None
    assert record.failures == 1
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "2468"}, later) == "ok"


def test_the_lockout_window_is_read_at_each_check(setup: Setup) -> None:
    setup.set_pin("2468")
    lock = device(LOCK)
    for i in range(5):
        setup.check(lock, "LockUnlock", {"lock": False}, {"pin": f"000{i}"})
    setup.lockout_ms = 1000
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "2468"}, NOW + 999) == "tooManyFailedAttempts"
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "2468"}, NOW + 1000) == "ok"


def test_pins_of_devices_are_separate(setup: Setup) -> None:
    setup.set_pin("2468", "d1")
    setup.set_pin("1357", "d2")
    first, second = device(LOCK, "d1"), device(LOCK, "d2")
    assert setup.check(first, "LockUnlock", {"lock": False}, {"pin": "1357"}) == "challengeFailedPinNeeded"
    assert setup.check(second, "LockUnlock", {"lock": False}, {"pin": "1357"}) == "ok"


class RacingPins(MemoryPinStore):
    """Other requests' wrong PINs land between this request's read and its own count."""

    def __init__(self, others: int) -> None:
        super().__init__()
        self.others = others

    def count_attempt(self, agent_user_id: str, device_id: str, now_ms: int) -> int | None:
        for _ in range(self.others):
            super().count_attempt(agent_user_id, device_id, now_ms)
        self.others = 0
        return super().count_attempt(agent_user_id, device_id, now_ms)


def test_an_attempt_past_the_limit_is_refused_without_checking_the_pin() -> None:
    pins = RacingPins(others=5)
    hasher = FakeHasher()
    gate = Challenges(pins, lambda: hasher, lambda: LOCKOUT_MS)
    pins.set_pin(USER, "d1", hasher.hash("2468"), NOW)
    with pytest.raises(CommandError) as refused:
        gate.check(
            USER, device(LOCK), Execution("action.devices.commands.LockUnlock", {"lock": False}, {"pin": "2468"}), NOW
        )
    assert refused.value.code == "tooManyFailedAttempts"
    assert hasher.verified == 0


def test_an_expired_lockout_changed_meanwhile_is_judged_again() -> None:
    class Changing(MemoryPinStore):
        def reset_if_unchanged(self, agent_user_id: str, device_id: str, version: Any) -> bool:
            # Another request reset it first and counted one wrong PIN of its own.
            key = (agent_user_id, device_id)
            self.records[key] = PinRecord(self.records[key].pin_hash, 1, NOW + LOCKOUT_MS, version="other")
            return False

    pins = Changing()
    hasher = FakeHasher()
    pins.records[(USER, "d1")] = PinRecord(hasher.hash("2468"), 5, NOW - LOCKOUT_MS, version="v")
    gate = Challenges(pins, lambda: hasher, lambda: LOCKOUT_MS)
    execution_ = Execution("action.devices.commands.LockUnlock", {"lock": False}, {"pin": "2468"})
    gate.check(USER, device(LOCK), execution_, NOW + 1)
    assert pins.records[(USER, "d1")].failures == 0


def test_a_request_planned_again_counts_its_pin_once(setup: Setup) -> None:
    setup.set_pin("2468")
    lock = device(LOCK)
    wrong = Execution("action.devices.commands.LockUnlock", {"lock": False}, {"pin": "1111"})
    for _ in range(3):
        with pytest.raises(ChallengeNeeded):
            setup.gate.check(USER, lock, wrong, NOW)
    record = setup.pins.get(USER, "d1")
    assert record is not None
    assert record.failures == 1
    assert setup.hasher.verified == 1


@pytest.mark.parametrize("pin", ["123", "1234567890123", "12a4", " 1234", "", "\uff11\uff12\uff13\uff14"])
def test_pin_format(pin: str) -> None:
    assert policy.pin_problem(pin) is not None
    assert policy.pin_problem("1234") is None
    assert policy.pin_problem("123456789012") is None


# Through the fulfillment


class ConflictingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.conflicts_left = 0

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        if self.conflicts_left:
            self.conflicts_left -= 1
            for write in writes:
                self.versions[(agent_user_id, write.device_id)] += 1000
        return super().commit_states(agent_user_id, writes)


def fulfillment(setup: Setup, store: MemoryStore) -> Fulfillment:
    return Fulfillment(store, clock_ms=lambda: NOW, sleep=lambda _: None, challenges=setup.gate)


def test_execute_answers_challenges_in_googles_shape(setup: Setup) -> None:
    store = ConflictingStore()
    store.put_device(USER, "front", new_device_document("front", LOCK))
    store.put_device(USER, "back", new_device_document("back", LOCK))
    store.put_device(USER, "garage", new_device_document("garage", opener("GARAGE")))
    setup.set_pin("2468", "back")
    service = fulfillment(setup, store)
    token = tokens.issue(store, tokens.ACCESS, USER, 3600, NOW)

    reply = service.handle(
        token,
        execute_request(
            [
                (["front", "back"], [execution("LockUnlock", {"lock": False})]),
                (["garage"], [execution("OpenClose", {"openPercent": 100})]),
            ]
        ),
    )
    oracle().assert_response("execute", reply.body)
    by_id = {i: r for r in reply.body["payload"]["commands"] for i in r["ids"]}
    assert by_id["front"] == {
        "ids": ["front"],
        "status": "ERROR",
        "errorCode": "challengeNeeded",
        "challengeNeeded": {"type": "ackNeeded"},
        "states": {"online": True, "isLocked": True, "isJammed": False},
    }
    assert by_id["back"] == {
        "ids": ["back"],
        "status": "ERROR",
        "errorCode": "challengeNeeded",
        "challengeNeeded": {"type": "pinNeeded"},
    }
    assert by_id["garage"]["challengeNeeded"] == {"type": "ackNeeded"}
    assert by_id["garage"]["states"] == {"online": True, "openPercent": 0}
    assert store.devices[USER]["front"]["state"]["isLocked"] is True

    # Google asks the user and sends the request again with the answer; a write conflict plans it once more.
    store.conflicts_left = 1
    reply = service.handle(
        token,
        execute_request(
            [
                (["front"], [execution("LockUnlock", {"lock": False}, challenge={"ack": True})]),
                (["back"], [execution("LockUnlock", {"lock": False}, challenge={"pin": "2468"})]),
            ]
        ),
    )
    oracle().assert_response("execute", reply.body)
    assert reply.body["payload"]["commands"] == [
        {
            "ids": ["front", "back"],
            "status": "SUCCESS",
            "states": {"online": True, "isLocked": False, "isJammed": False},
        }
    ]
    assert setup.hasher.verified == 1

    reply = service.handle(
        token,
        execute_request(
            [
                (
                    ["back"],
                    [
                        execution("LockUnlock", {"lock": True}),
                        execution("LockUnlock", {"lock": False}, challenge={"pin": "0000"}),
                    ],
                )
            ]
        ),
    )
    oracle().assert_response("execute", reply.body)
    assert reply.body["payload"]["commands"] == [
        {
            "ids": ["back"],
            "status": "ERROR",
            "errorCode": "challengeNeeded",
            "challengeNeeded": {"type": "challengeFailedPinNeeded"},
        }
    ]
    assert store.devices[USER]["back"]["state"]["isLocked"] is False, "nothing of a challenged request is applied"


def test_execute_answers_a_lockout_with_the_error_code(setup: Setup) -> None:
    store = MemoryStore()
    store.put_device(USER, "front", new_device_document("front", LOCK))
    setup.set_pin("2468", "front")
    service = fulfillment(setup, store)
    token = tokens.issue(store, tokens.ACCESS, USER, 3600, NOW)
    bodies = [
        service.handle(
            token, execute_request([(["front"], [execution("LockUnlock", {"lock": False}, challenge={"pin": "1"})])])
        ).body
        for _ in range(6)
    ]
    for body in bodies:
        oracle().assert_response("execute", body)
    assert [b["payload"]["commands"][0].get("challengeNeeded", {}).get("type") for b in bodies[:4]] == [
        "challengeFailedPinNeeded"
    ] * 4
    for body in bodies[4:]:
        assert body["payload"]["commands"] == [
            {"ids": ["front"], "status": "ERROR", "errorCode": "tooManyFailedAttempts"}
        ]


def test_a_malformed_pin_counts_as_wrong_without_a_slow_hash(setup: Setup) -> None:
    setup.set_pin("2468")
    lock = device(LOCK)
    assert setup.check(lock, "LockUnlock", {"lock": False}, {"pin": "twenty"}) == "challengeFailedPinNeeded"
    assert setup.hasher.verified == 0
    record = setup.pins.get(USER, "d1")
    assert record is not None
    assert record.failures == 1


def test_the_fulfillment_starts_without_loading_argon2() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    probe = (
        "import sys, json; import main; from functions.fulfillment.wiring import service; service(); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('argon2', '_argon2_cffi_bindings'))))"
    )
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9", "GOOGLE_CLOUD_PROJECT": "demo-probe"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
