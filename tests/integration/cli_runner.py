"""Runs the operators' CLI (`python -m functions ...`) as its own process against the test session's emulators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120


@dataclass(frozen=True)
class Done:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "functions", *args]


def run_cli(*args: str, stdin: str | None = None) -> Done:
    """One CLI run; the environment (FIRESTORE_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT) is the test session's."""
    done = subprocess.run(
        _command(args),
        cwd=REPO_ROOT,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=dict(os.environ),
    )
    return Done(done.returncode, done.stdout, done.stderr)


def run_cli_many(runs: Sequence[tuple[Sequence[str], str | None]], at_once: int = 6) -> list[Done]:
    """Several CLI runs, a few at a time (each is mostly interpreter start-up); results in the order given."""
    results: list[Done] = []
    for start in range(0, len(runs), at_once):
        batch = []
        for args, stdin in runs[start : start + at_once]:
            process = subprocess.Popen(
                _command(args),
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ),
            )
            batch.append((process, stdin))
        for process, stdin in batch:
            out, err = process.communicate(stdin or "", timeout=TIMEOUT_S)
            results.append(Done(process.returncode, out, err))
    return results
