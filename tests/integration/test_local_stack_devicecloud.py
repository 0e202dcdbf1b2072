"""The device cloud simulator as `make up` runs it: on a stack of this module's own (`python -m tools.stack`), a
"pubsub" lock and a "webhook" lamp added with `devices add` reach Google (Request Sync, SYNC), take Google's
commands (the lock PENDING, then its follow-up once the simulator locked it; the lamp at once, through the signed
webhook call), and `devices publish-state` reaches HomeGraph, all from a CLI that finds the stack by itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_local_stack import READY, StackRun, banner_value, cli, get, wait_for
from tests.schema_oracle import oracle
from tools import emulators

pytestmark = pytest.mark.emulator

T = "action.devices.traits."
LOCK = {
    "id": "garage-lock",
    "type": "action.devices.types.LOCK",
    "traits": [T + "LockUnlock"],
    "name": {"name": "Garage lock"},
    "willReportState": True,
    "backend": "pubsub",
}
LAMP = {
    "id": "maker-lamp",
    "type": "action.devices.types.LIGHT",
    "traits": [T + "OnOff", T + "Brightness"],
    "name": {"name": "Maker lamp"},
    "willReportState": True,
    "backend": "webhook",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    try:
        emulators.firestore_jar()
        emulators.pubsub_jar()
    except emulators.EmulatorUnavailable as missing:
        pytest.skip(str(missing))
    started = StackRun(tmp_path_factory.mktemp("devicecloud-stack"), "--fresh")
    try:
        started.wait_for(READY)
        yield started
    finally:
        started.end()


def test_pubsub_and_webhook_devices_work_end_to_end_with_the_simulator(run: StackRun) -> None:
    output = run.output
    user = banner_value(output, r"Demo user: (\S+)")
    urls = run.record()["urls"]
    assert "device cloud simulator" in urls
    standin = urls["homegraph stand-in"]

    def reports(device_id: str) -> list[dict[str, Any]]:
        calls = get(f"{standin}/standin/calls?method=reportStateAndNotification&agentUserId={user}")["calls"]
        devices = [c["request"]["payload"]["devices"] for c in calls if c["status"] == 200]
        return [d for d in devices if device_id in d.get("states", {}) or device_id in d.get("notifications", {})]

    def stand_in_state(device_id: str) -> dict[str, Any]:
        held: dict[str, Any] = get(f"{standin}/standin/users/{user}").get("states", {}).get(device_id, {})
        return held

    added = cli(run, "devices", "add", "--user", user, "--file", "-", stdin=json.dumps([LOCK, LAMP]))
    assert added.returncode == 0, added.stderr
    wait_for(lambda: stand_in_state("garage-lock") and stand_in_state("maker-lamp"), "the new devices' SYNC", 60)

    # The lock's command goes to the commands topic; the simulator locks it a second later.
    locking = cli(run, "google", "execute", "--user", user, "--id", "garage-lock", "--command", "LockUnlock",
                  "--params", '{"lock": true}', "--follow-up-token", "stack-token")  # fmt: skip
    assert locking.returncode == 0, locking.stdout + locking.stderr
    answer = json.loads(locking.stdout)
    oracle().assert_response("execute", answer)
    assert answer["payload"]["commands"][0]["status"] == "PENDING"
    followed = wait_for(
        lambda: [d for d in reports("garage-lock") if "garage-lock" in d.get("notifications", {})],
        "the lock's follow-up",
    )
    response = followed[0]["notifications"]["garage-lock"]["LockUnlock"]["followUpResponse"]
    assert response == {"status": "SUCCESS", "isLocked": True, "followUpToken": "stack-token"}
    assert stand_in_state("garage-lock")["isLocked"] is True

    # The lamp's command is a signed call to the simulator's webhook, answered at once.
    lighting = cli(run, "google", "execute", "--user", user, "--id", "maker-lamp", "--command", "OnOff",
                   "--params", '{"on": true}')  # fmt: skip
    assert lighting.returncode == 0, lighting.stdout + lighting.stderr
    [result] = json.loads(lighting.stdout)["payload"]["commands"]
    assert result["status"] == "SUCCESS"
    assert result["states"]["on"] is True
    wait_for(lambda: stand_in_state("maker-lamp").get("on") is True, "the lamp's state at HomeGraph")

    # A device cloud's state message from the command line.
    published = cli(run, "devices", "publish-state", "--user", user, "--id", "maker-lamp", "--states",
                    '{"brightness": 42}')  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["published"]
    wait_for(lambda: stand_in_state("maker-lamp").get("brightness") == 42, "the published state at HomeGraph")
    log = Path(run.stack_dir) / "devicecloud.log"
    assert "device cloud simulator ready" in log.read_text()
