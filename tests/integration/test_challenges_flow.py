"""Two-factor challenges end to end: PINs and rules set with the CLI, EXECUTEs through the real fulfillment on the
Firestore emulator (acknowledgement, PIN, wrong PIN, lockout and its end), and no PIN anywhere it could leak.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.platform.logs import JsonLineFormatter
from tests.integration.cli_runner import run_cli
from tests.integration.conftest import Google
from tests.schema_oracle import oracle
from tools.google import execute_request, execution, query_request

pytestmark = pytest.mark.emulator

PIN = "80417236"  # distinctive, so that finding it anywhere is not a coincidence
WRONG = "11110000"

LOCK: dict[str, Any] = {
    "id": "front-door",
    "type": "action.devices.types.LOCK",
    "traits": ["action.devices.traits.LockUnlock"],
    "name": {"name": "Front door"},
    "willReportState": True,
    "state": {"isLocked": True, "isJammed": False},
}
GARAGE: dict[str, Any] = {
    "id": "garage",
    "type": "action.devices.types.GARAGE",
    "traits": ["action.devices.traits.OpenClose"],
    "name": {"name": "Garage door"},
    "willReportState": True,
    "attributes": {"discreteOnlyOpenClose": True},
}
CAMERA: dict[str, Any] = {
    "id": "porch-camera",
    "type": "action.devices.types.CAMERA",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.CameraStream"],
    "name": {"name": "Porch camera"},
    "willReportState": True,
    "attributes": {"cameraStreamSupportedProtocols": ["hls"], "cameraStreamNeedAuthToken": False},
    "state": {"on": True},
}


class LogLines(logging.Handler):
    """Every log record of the test, formatted as the deployed functions write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonLineFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    handler = LogLines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def alice(google: Callable[[str], Google], add_devices: Callable[..., None]) -> Google:
    add_devices("alice", [dict(LOCK), dict(GARAGE), dict(CAMERA)])
    return google("alice")


def unlock(challenge: dict[str, Any] | None = None, device_id: str = "front-door") -> dict[str, Any]:
    extra = {"challenge": challenge} if challenge is not None else {}
    return execute_request([([device_id], [execution("LockUnlock", {"lock": False}, **extra)])])


def result_of(user: Google, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = user.post(body)
    assert status == 200
    oracle().assert_response("execute", answer)
    (result,) = answer["payload"]["commands"]
    return dict(result)


def challenge_of(result: dict[str, Any]) -> str | None:
    if result["status"] == "SUCCESS":
        return "SUCCESS"
    assert result["status"] == "ERROR"
    if "challengeNeeded" in result:
        assert result["errorCode"] == "challengeNeeded"
        return str(result["challengeNeeded"]["type"])
    return str(result["errorCode"])


def is_locked(user: Google, device_id: str = "front-door") -> bool:
    status, body = user.post(query_request([device_id]))
    assert status == 200
    oracle().assert_response("query", body)
    return bool(body["payload"]["devices"][device_id]["isLocked"])


def set_pin(user: str, device_id: str, pin: str = PIN) -> None:
    done = run_cli("devices", "pin", "--user", user, "--id", device_id, stdin=pin + "\n")
    assert done.code == 0, done.stderr
    assert done.json() == {"id": device_id, "pin": "set"}
    assert pin not in done.stdout + done.stderr


def every_document(db: Any) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(collections: Any) -> None:
        for collection in collections:
            for ref in collection.list_documents():
                snap = ref.get()
                if snap.exists:
                    found.append((ref.path, snap.to_dict() or {}))
                walk(ref.collections())

    walk(db.collections())
    return found


# Acknowledgements


def test_unlocking_without_a_pin_asks_for_an_acknowledgement(alice: Google) -> None:
    result = result_of(alice, unlock())
    assert result == {
        "ids": ["front-door"],
        "status": "ERROR",
        "errorCode": "challengeNeeded",
        "challengeNeeded": {"type": "ackNeeded"},
        "states": {"online": True, "isLocked": True, "isJammed": False},
    }
    assert is_locked(alice)
    assert challenge_of(result_of(alice, unlock({"ack": False}))) == "ackNeeded"
    assert challenge_of(result_of(alice, unlock({"ack": True}))) == "SUCCESS"
    assert not is_locked(alice)
    # Locking again needs no challenge.
    lock = execute_request([(["front-door"], [execution("LockUnlock", {"lock": True})])])
    assert challenge_of(result_of(alice, lock)) == "SUCCESS"


def test_opening_the_garage_needs_an_acknowledgement_closing_does_not(alice: Google) -> None:
    open_it = execute_request([(["garage"], [execution("OpenClose", {"openPercent": 100})])])
    result = result_of(alice, open_it)
    assert challenge_of(result) == "ackNeeded"
    assert result["states"] == {"online": True, "openPercent": 0}
    acknowledged = execute_request(
        [(["garage"], [execution("OpenClose", {"openPercent": 100}, challenge={"ack": True})])]
    )
    assert result_of(alice, acknowledged)["states"] == {"online": True, "openPercent": 100}
    close_it = execute_request([(["garage"], [execution("OpenClose", {"openPercent": 0})])])
    assert challenge_of(result_of(alice, close_it)) == "SUCCESS"


# PINs


def test_pin_wrong_pin_and_right_pin(alice: Google, firestore_db: Any) -> None:
    set_pin("alice", "front-door")
    assert challenge_of(result_of(alice, unlock())) == "pinNeeded"
    assert challenge_of(result_of(alice, unlock({"ack": True}))) == "pinNeeded", "an acknowledgement is not a PIN"
    assert challenge_of(result_of(alice, unlock({"pin": WRONG}))) == "challengeFailedPinNeeded"
    assert challenge_of(result_of(alice, unlock({"pin": WRONG}))) == "challengeFailedPinNeeded"
    record = firestore_db.document("users/alice/devicePins/front-door").get().to_dict()
    assert record["failures"] == 2
    assert is_locked(alice)
    assert challenge_of(result_of(alice, unlock({"pin": PIN}))) == "SUCCESS"
    assert not is_locked(alice)
    assert firestore_db.document("users/alice/devicePins/front-door").get().to_dict()["failures"] == 0


def test_five_wrong_pins_lock_out_until_the_window_ends(
    alice: Google, monkeypatch: pytest.MonkeyPatch, firestore_db: Any
) -> None:
    window_s = 8  # wide: the checks below must run inside it on a slow, shared machine
    monkeypatch.setenv("CHALLENGE_LOCKOUT_SECONDS", str(window_s))
    set_pin("alice", "front-door")
    answers = [challenge_of(result_of(alice, unlock({"pin": f"{WRONG[:-1]}{i}"}))) for i in range(4)]
    locked_at = time.monotonic()  # before the fifth: the server's window starts while it is handled
    answers.append(challenge_of(result_of(alice, unlock({"pin": f"{WRONG[:-1]}4"}))))
    fifth_answered_at = time.monotonic()  # ... and ends at the latest window_s after this
    assert answers == ["challengeFailedPinNeeded"] * 4 + ["tooManyFailedAttempts"]
    # The right PIN does not open a locked-out device, nor does asking again.
    assert challenge_of(result_of(alice, unlock({"pin": PIN}))) == "tooManyFailedAttempts"
    assert challenge_of(result_of(alice, unlock())) == "tooManyFailedAttempts"
    assert time.monotonic() - locked_at < window_s, "the checks above ran within the window"
    assert is_locked(alice)
    status = run_cli("devices", "challenges", "--user", "alice", "--id", "front-door", "--show").json()["pin"]
    assert (status["set"], status["failures"]) == (True, 5)
    if time.monotonic() - locked_at < window_s:
        assert status["locked"] is True

    time.sleep(max(0.0, window_s - (time.monotonic() - fifth_answered_at)) + 0.3)
    assert challenge_of(result_of(alice, unlock({"pin": WRONG}))) == "challengeFailedPinNeeded", "counting anew"
    assert challenge_of(result_of(alice, unlock({"pin": PIN}))) == "SUCCESS"
    assert not is_locked(alice)


def test_the_operator_can_lift_a_lockout(alice: Google) -> None:
    set_pin("alice", "front-door")
    for i in range(5):
        result_of(alice, unlock({"pin": f"{WRONG[:-1]}{i}"}))
    assert challenge_of(result_of(alice, unlock({"pin": PIN}))) == "tooManyFailedAttempts"
    done = run_cli("devices", "pin", "--user", "alice", "--id", "front-door", "--unlock")
    assert done.code == 0, done.stderr
    assert challenge_of(result_of(alice, unlock({"pin": PIN}))) == "SUCCESS"


def test_concurrent_wrong_pins_cannot_get_past_the_lockout(alice: Google, firestore_db: Any) -> None:
    set_pin("alice", "front-door")
    answers: list[str | None] = []
    lock = threading.Lock()

    def guess(index: int) -> None:
        answer = challenge_of(result_of(alice, unlock({"pin": f"{index:08d}"})))
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 16
    # At most five guesses were checked; the fifth wrong one and all later ones are refused.
    assert answers.count("challengeFailedPinNeeded") <= 4
    assert answers.count("tooManyFailedAttempts") >= 12
    assert "SUCCESS" not in answers
    assert firestore_db.document("users/alice/devicePins/front-door").get().to_dict()["failures"] >= 5
    assert challenge_of(result_of(alice, unlock({"pin": PIN}))) == "tooManyFailedAttempts"


def test_removing_the_pin_goes_back_to_acknowledgements(alice: Google) -> None:
    set_pin("alice", "front-door")
    assert challenge_of(result_of(alice, unlock())) == "pinNeeded"
    done = run_cli("devices", "pin", "--user", "alice", "--id", "front-door", "--remove")
    assert done.code == 0, done.stderr
    assert challenge_of(result_of(alice, unlock())) == "ackNeeded"


# Rules set with the CLI


def test_rules_set_with_the_cli_apply_at_once(alice: Google, firestore_db: Any) -> None:
    rules = {"OnOff": [{"type": "none", "when": {"on": True}}, {"type": "pin"}]}
    done = run_cli(
        "devices", "challenges", "--user", "alice", "--id", "porch-camera", "--file", "-", stdin=json.dumps(rules)
    )
    assert done.code == 1
    assert "set it first" in done.stderr, "a pin rule needs a PIN"
    set_pin("alice", "porch-camera", "24681357")
    done = run_cli(
        "devices", "challenges", "--user", "alice", "--id", "porch-camera", "--file", "-", stdin=json.dumps(rules)
    )
    assert done.code == 0, done.stderr
    assert firestore_db.document("users/alice/devices/porch-camera").get().to_dict()["challenges"] == rules

    off = execute_request([(["porch-camera"], [execution("OnOff", {"on": False})])])
    assert challenge_of(result_of(alice, off)) == "pinNeeded"
    off_with_pin = execute_request(
        [(["porch-camera"], [execution("OnOff", {"on": False}, challenge={"pin": "24681357"})])]
    )
    assert challenge_of(result_of(alice, off_with_pin)) == "SUCCESS"
    on = execute_request([(["porch-camera"], [execution("OnOff", {"on": True})])])
    assert challenge_of(result_of(alice, on)) == "SUCCESS"

    shown = run_cli("devices", "challenges", "--user", "alice", "--id", "porch-camera", "--show").json()
    assert shown["configured"] == rules
    assert shown["inForce"] == {
        "action.devices.commands.OnOff": [{"type": "none", "when": {"on": True}}, {"type": "pin"}]
    }
    assert shown["pin"] == {"set": True, "failures": 0, "locked": False}

    # Rules for the lock that turn its default off.
    done = run_cli(
        "devices", "challenges", "--user", "alice", "--id", "front-door", "--file", "-",
        stdin=json.dumps({"action.devices.commands.LockUnlock": []}),
    )  # fmt: skip
    assert done.code == 0, done.stderr
    assert challenge_of(result_of(alice, unlock())) == "SUCCESS"
    assert run_cli("devices", "challenges", "--user", "alice", "--id", "front-door", "--clear").code == 0
    assert "challenges" not in firestore_db.document("users/alice/devices/front-door").get().to_dict()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"OnOff": {"type": "ack"}}, "challenges.OnOff: 'OnOff' is not a command of this device's traits"),
        ({"LockUnlock": {"type": "sometimes"}}, "challenges.LockUnlock.type: must be one of"),
        ({"LockUnlock": {"type": "ack", "when": {"locked": True}}}, "challenges.LockUnlock.when.locked"),
        (["LockUnlock"], "challenges: must be an object"),
    ],
)
def test_invalid_rules_are_refused_and_nothing_is_written(
    alice: Google, firestore_db: Any, rules: Any, message: str
) -> None:
    done = run_cli(
        "devices", "challenges", "--user", "alice", "--id", "front-door", "--file", "-", stdin=json.dumps(rules)
    )
    assert done.code == 1
    assert message in done.stderr
    assert "challenges" not in firestore_db.document("users/alice/devices/front-door").get().to_dict()


@pytest.mark.parametrize("pin", ["123", "12ab", "", "1234567890123"])
def test_malformed_pins_are_refused(alice: Google, firestore_db: Any, pin: str) -> None:
    done = run_cli("devices", "pin", "--user", "alice", "--id", "front-door", stdin=pin + "\n")
    assert done.code == 1
    assert "4 to 12 digits" in done.stderr
    assert not firestore_db.document("users/alice/devicePins/front-door").get().exists


def test_pins_of_unknown_devices_are_refused(alice: Google) -> None:
    done = run_cli("devices", "pin", "--user", "alice", "--id", "nope", stdin=PIN + "\n")
    assert done.code == 1
    assert "no device 'nope'" in done.stderr


# Leaks


def test_no_pin_in_any_document_or_log_line(alice: Google, firestore_db: Any, log_lines: LogLines) -> None:
    set_pin("alice", "front-door")
    result_of(alice, unlock({"pin": WRONG}))
    result_of(alice, unlock({"pin": PIN}))
    result_of(alice, unlock({"pin": "1"}))
    for i in range(5):
        result_of(alice, unlock({"pin": f"{PIN[:-1]}{i}"}))

    documents = every_document(firestore_db)
    paths = [path for path, _ in documents]
    assert "users/alice/devicePins/front-door" in paths
    dumped = json.dumps(documents, default=str)
    for secret in (PIN, WRONG, f"{PIN[:-1]}0"):
        assert secret not in dumped
    pin_document = dict(documents)["users/alice/devicePins/front-door"]
    assert pin_document["hash"].startswith("$argon2id$")
    device_document = dict(documents)["users/alice/devices/front-door"]
    assert "$argon2" not in json.dumps(device_document, default=str), "the hash is kept apart from the device"

    assert log_lines.lines, "the fulfillment logged its requests"
    for line in log_lines.lines:
        for secret in (PIN, WRONG, f"{PIN[:-1]}0"):
            assert secret not in line, line


# The Firestore adapter itself


def test_attempts_are_counted_atomically(firestore_db: Any) -> None:
    from functions.fulfillment.pin_store import FirestorePinStore

    store = FirestorePinStore()
    assert store.count_attempt("bob", "lock", 1_000) is None, "no PIN, nothing counted"
    store.set_pin("bob", "lock", "$argon2id$not-a-real-hash", 1_000)
    counts: list[int | None] = []
    guard = threading.Lock()

    def attempt() -> None:
        count = store.count_attempt("bob", "lock", 2_000)
        with guard:
            counts.append(count)

    threads = [threading.Thread(target=attempt) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c for c in counts if c is not None) == list(range(1, 25))
    record = store.get("bob", "lock")
    assert record is not None
    assert (record.failures, record.last_attempt_ms) == (24, 2_000)

    assert not store.reset_if_unchanged("bob", "lock", record.version.replace(year=2000)), "changed since"
    assert store.reset_if_unchanged("bob", "lock", record.version)
    fresh = store.get("bob", "lock")
    assert fresh is not None
    assert fresh.failures == 0
    assert fresh.pin_hash == "$argon2id$not-a-real-hash"
    assert store.remove_pin("bob", "lock")
    assert not store.remove_pin("bob", "lock")
    assert store.get("bob", "lock") is None


def test_the_pin_prompt_asks_twice_on_a_terminal(alice: Google, firestore_db: Any) -> None:
    import os
    import pty
    import select
    import subprocess
    import sys

    from tests.integration.cli_runner import REPO_ROOT

    def prompted(first: str, second: str) -> tuple[int, str]:
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "functions", "devices", "pin", "--user", "alice", "--id", "front-door"],
            cwd=REPO_ROOT,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=dict(os.environ),
            start_new_session=True,
        )
        os.close(terminal)
        seen = b""
        for answer in (first, second):
            deadline = time.monotonic() + 30
            while b"PIN" not in seen.rsplit(b"\n", 1)[-1]:
                ready, _, _ = select.select([controller], [], [], max(0.0, deadline - time.monotonic()))
                assert ready, f"no prompt: {seen!r}"
                seen += os.read(controller, 1024)
            os.write(controller, answer.encode() + b"\n")
            seen += b"\n"
        code = process.wait(timeout=60)
        try:
            while chunk := os.read(controller, 1024):
                seen += chunk
        except OSError:
            pass
        os.close(controller)
        return code, seen.decode(errors="replace")

    code, screen = prompted(PIN, "80417237")
    assert code == 1
    assert "the two PINs differ" in screen
    assert not firestore_db.document("users/alice/devicePins/front-door").get().exists
    code, screen = prompted(PIN, PIN)
    assert code == 0, screen
    assert PIN not in screen, "the PIN is not echoed"
    assert challenge_of(result_of(alice, unlock({"pin": PIN}))) == "SUCCESS"
