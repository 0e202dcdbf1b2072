"""Shared benchmark helpers: interleaved paired rounds, their medians and spread, and the result table.

A paired figure runs ours and the bare baseline in alternating order (A B, then B A, ...), so that the machine's
noise, which drifts, falls on both alike; each round gives one ratio ours/bare, and the figure is the median of
those ratios with their spread (the middle half: 25th to 75th percentile), next to each side's own median.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, middle, high


@dataclass(frozen=True)
class Paired:
    """Paired measurements of one case: ours[i] and bare[i] come from the same round."""

    case: str
    ours: list[float]
    bare: list[float]
    target: float | None  # the ratio ours/bare to stay at or under (None: shown for information)
    unit: str = "ms"
    higher_is_better: bool = False  # throughput: the target is a floor, the ratio ours/bare should be at least it
    cpu: tuple[float, float] | None = None  # the servers' CPU seconds per request over the case: (ours, bare)

    @property
    def ratios(self) -> list[float]:
        return [o / b for o, b in zip(self.ours, self.bare, strict=True)]

    def met(self) -> bool | None:
        if self.target is None:
            return None
        ratio = quartiles(self.ratios)[1]
        return ratio >= self.target if self.higher_is_better else ratio <= self.target

    def as_row(self) -> dict[str, Any]:
        ours, bare, ratio = quartiles(self.ours), quartiles(self.bare), quartiles(self.ratios)
        return {
            "case": self.case,
            "rounds": len(self.ours),
            "unit": self.unit,
            "ours": {"p25": ours[0], "median": ours[1], "p75": ours[2]},
            "bare": {"p25": bare[0], "median": bare[1], "p75": bare[2]},
            "ratio": {"p25": ratio[0], "median": ratio[1], "p75": ratio[2]},
            "target": self.target,
            "higher_is_better": self.higher_is_better,
            "met": self.met(),
            "cpu_per_request_ms": None
            if self.cpu is None
            else {"ours": self.cpu[0] * 1000, "bare": self.cpu[1] * 1000},
        }


def interleaved(
    ours: Callable[[], float], bare: Callable[[], float], rounds: int, warmup: int = 3
) -> tuple[list[float], list[float]]:
    """`rounds` paired measurements, A B in even rounds and B A in odd ones; each callable returns what it measured."""
    for _ in range(warmup):
        ours()
        bare()
    ours_values, bare_values = [], []
    for index in range(rounds):
        if index % 2 == 0:
            ours_values.append(ours())
            bare_values.append(bare())
        else:
            bare_values.append(bare())
            ours_values.append(ours())
    return ours_values, bare_values


def _spread(values: dict[str, float], scale: float) -> str:
    return f"{values['median'] * scale:.2f} ({values['p25'] * scale:.2f}-{values['p75'] * scale:.2f})"


def report(name: str, figures: list[Paired], setup: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Prints the table (medians, with the middle half of the rounds in brackets) and writes results/NAME.json."""
    rows = [figure.as_row() for figure in figures]
    print(f"\n{name}: median (25th-75th percentile) of the rounds; ratio = ours/bare per round, paired")
    print(
        f"{'case':<44} {'rounds':>6} {'ours':>22} {'bare':>22} {'ratio':>20} {'target':>8}   "
        "server CPU per request: ours / bare ms (ratio)"
    )
    for row in rows:
        scale = 1000.0 if row["unit"] == "ms" else 1.0
        target = "-" if row["target"] is None else ("≥ " if row["higher_is_better"] else "≤ ") + f"{row['target']:.2f}"
        verdict = {True: "          ", False: "  (missed)", None: "          "}[row["met"]]
        cpu = row["cpu_per_request_ms"]
        work = "" if cpu is None else f" {cpu['ours']:.2f} / {cpu['bare']:.2f} ({cpu['ours'] / cpu['bare']:.2f})"
        print(
            f"{row['case']:<44} {row['rounds']:>6} {_spread(row['ours'], scale):>22} {_spread(row['bare'], scale):>22} "
            f"{_spread(row['ratio'], 1.0):>20} {target:>8}{verdict}{work}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"rows": rows, "setup": setup or {}}, indent=2) + "\n")
    return rows
