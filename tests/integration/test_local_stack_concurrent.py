"""Two stacks started at the same moment (a `make up` while the tests start theirs, two CI jobs on one machine) each
come up on ports of their own (tools/ports.py). Before the ports were reserved, both found the default ports free,
and one stack failed to listen or talked to the other one's emulator, which refused its project."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import pytest

from tests.integration.test_local_stack import PROJECT, READY, StackRun

pytestmark = pytest.mark.emulator


def test_two_stacks_started_together_each_come_up_on_their_own_ports(tmp_path: Path) -> None:
    runs: list[StackRun] = []
    codes: list[int] = []
    with contextlib.ExitStack() as ending:  # each run ended, whatever fails
        for name in ("first", "second"):
            run = StackRun(tmp_path / name, project=f"{PROJECT}-{name}")
            ending.callback(lambda run=run: codes.append(run.end(signal.SIGTERM)))
            runs.append(run)
        for run in runs:
            run.wait_for(READY, timeout_s=240)
        first, second = (set(run.ports().values()) for run in runs)
        assert first.isdisjoint(second), (runs[0].ports(), runs[1].ports())
        shared = [run.record()["env"] for run in runs]
        assert [env["GOOGLE_CLOUD_PROJECT"] for env in shared] == [f"{PROJECT}-first", f"{PROJECT}-second"]
        assert shared[0]["FIRESTORE_EMULATOR_HOST"] != shared[1]["FIRESTORE_EMULATOR_HOST"]
        assert shared[0]["PUBSUB_EMULATOR_HOST"] != shared[1]["PUBSUB_EMULATOR_HOST"]
    assert codes == [0, 0]
