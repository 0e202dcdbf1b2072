"""Shared benchmark helpers: timing, medians and the result table."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def paired(ours: Callable[[], Any], bare: Callable[[], Any], rounds: int, warmup: int = 3) -> tuple[float, float]:
    """Median seconds of `ours` and `bare`, interleaved so that machine noise hits both alike."""
    for _ in range(warmup):
        ours()
        bare()
    ours_times, bare_times = [], []
    for _ in range(rounds):
        ours_times.append(timed(ours))
        bare_times.append(timed(bare))
    return statistics.median(ours_times), statistics.median(bare_times)


def report(name: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{name}")
    print(f"{'case':<34} {'ours ms':>9} {'bare ms':>9} {'ratio':>7} {'target':>7}")
    for row in rows:
        verdict = "" if row["ratio"] <= row["target"] else "  (over target)"
        print(
            f"{row['case']:<34} {row['ours_ms']:>9.2f} {row['bare_ms']:>9.2f} {row['ratio']:>7.2f} "
            f"{row['target']:>7.2f}{verdict}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2))


def row(case: str, ours_s: float, bare_s: float, target: float) -> dict[str, Any]:
    return {
        "case": case,
        "ours_ms": ours_s * 1000,
        "bare_ms": bare_s * 1000,
        "ratio": ours_s / bare_s,
        "target": target,
    }
