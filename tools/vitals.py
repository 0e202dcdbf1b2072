"""`python -m functions vitals`: Google's Home Vitals figures, computed from the functions' own log lines.

    vitals                                   the local stack's logs (.local-stack/*.log)
    vitals FILE [FILE ...]                   log files: JSON lines, or `gcloud logging read --format=json` output
    vitals -                                 the lines on stdin
    vitals --project P [--since 24h]         Cloud Logging of project P (Application Default Credentials)
           [--since 90m] [--json] [--grace-s 5]

Per device type and overall: the QUERY and EXECUTE success rates (Google's rules: functions/core/vitals.py), their
p90 latency, the share of HomeGraph calls that succeeded (the whole project), the state accuracy estimate, each
GOOD or POOR against Google's gate, and how fresh the reports were (p50 / p95). The lines and their fields are
documented in docs/vitals.md. Exit codes: 0 every gate GOOD (or without data), 1 a gate is POOR or no line was
found, 2 usage.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import math
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from functions.core import vitals
from tools import local_stack

GOOD, POOR, NO_DATA = "GOOD", "POOR", "no data"
DEFAULT_SINCE = "24h"  # Cloud Logging: Google grades over days; a day keeps the read short
DEFAULT_GRACE_S = 5.0
TYPE_PREFIX = "action.devices.types."
OVERALL = "all"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Refused(Exception):
    """Nothing to read, or an option that makes no sense: one line on stderr, exit code 1 (2 for usage)."""


# Reading the lines


def since_ms(text: str, now_ms: int) -> int:
    """`24h`, `90m`, `7d`, `30s` before now, in epoch ms."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise Refused(f"--since {text!r}: give a duration such as 24h, 90m, 7d or 30s")
    return now_ms - int(float(match.group(1)) * _SECONDS[match.group(2)] * 1000)


def _whole_numbers(payload: Mapping[str, Any]) -> dict[str, Any]:
    """`payload` with 200.0 as 200: Cloud Logging keeps jsonPayload as a protobuf Struct, whose numbers are all
    doubles, and the rules compare statuses and times as integers."""
    return {
        key: int(value) if isinstance(value, float) and value.is_integer() else value for key, value in payload.items()
    }


def _payload(record: Any) -> dict[str, Any] | None:
    """A contract line from one parsed JSON value: our own line, or a Cloud Logging entry holding it."""
    if not isinstance(record, dict):
        return None
    payload = record.get("jsonPayload", record)
    if not isinstance(payload, dict) or payload.get("message") not in vitals.LINES:
        return None
    found = _whole_numbers(payload)
    if "atMs" not in found and isinstance(record.get("timestamp"), str):
        found["atMs"] = _rfc3339_ms(record["timestamp"])
    return found


def _rfc3339_ms(text: str) -> int | None:
    try:
        return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def parse_text(text: str) -> Iterator[dict[str, Any]]:
    """The contract lines of a log: one JSON object a line (other lines, such as a server's access log, are
    skipped), or one JSON array of Cloud Logging entries (`gcloud logging read --format=json`)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            entries = json.loads(stripped)
        except ValueError:
            entries = None
        if isinstance(entries, list):
            yield from (p for p in (_payload(entry) for entry in entries) if p is not None)
            return
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            parsed = json.loads(line[start:])
        except ValueError:
            continue
        payload = _payload(parsed)
        if payload is not None:
            yield payload


def read_files(names: Sequence[str], stdin: TextIO) -> Iterator[dict[str, Any]]:
    for name in names:
        if name == "-":
            yield from parse_text(stdin.read())
            continue
        try:
            text = Path(name).read_text(errors="replace")
        except OSError as problem:
            raise Refused(f"cannot read {name}: {problem.strerror}") from problem
        yield from parse_text(text)


def local_stack_logs() -> list[Path]:
    return sorted(local_stack.state_dir().glob("*.log"))


def read_cloud_logging(project: str, after_ms: int) -> Iterator[dict[str, Any]]:
    """The contract lines of the project's Cloud Functions (2nd gen: Cloud Run revisions) since `after_ms`."""
    from google.cloud import logging as cloud_logging

    start = dt.datetime.fromtimestamp(after_ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")
    messages = " OR ".join(f'"{message}"' for message in vitals.LINES)
    query = f'resource.type="cloud_run_revision" AND jsonPayload.message=({messages}) AND timestamp>="{start}"'
    client = cloud_logging.Client(project=project)  # type: ignore[no-untyped-call]
    entries = client.list_entries(  # type: ignore[no-untyped-call]
        resource_names=[f"projects/{project}"], filter_=query, page_size=1000
    )
    for entry in entries:
        payload = entry.payload
        if not isinstance(payload, dict):
            continue
        found = _whole_numbers(payload)
        if "atMs" not in found and entry.timestamp is not None:
            found["atMs"] = int(entry.timestamp.timestamp() * 1000)
        yield found


# The figures


def percentile(values: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile (the value at or below which `percent` % of the values lie)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _rate_gate(succeeded: int, total: int, gate: float) -> tuple[float | None, str]:
    if not total:
        return None, NO_DATA
    rate = succeeded / total
    return rate, GOOD if rate >= gate else POOR


@dataclass
class IntentTally:
    results: int = 0
    succeeded: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, line: Mapping[str, Any]) -> None:
        status = str(line.get("status") or "")
        exempt = line.get("exempt")
        if not isinstance(exempt, bool):
            exempt = vitals.is_exempt(status, line.get("errorCode"))
        self.results += 1
        if vitals.succeeded(status, exempt):
            self.succeeded += 1
        else:
            self.failures[str(line.get("errorCode") or status or "?")] += 1
        latency = line.get("latencyMs")
        if isinstance(latency, int | float) and not isinstance(latency, bool):
            self.latencies.append(float(latency))

    def figures(self) -> dict[str, Any]:
        rate, success_gate = _rate_gate(self.succeeded, self.results, vitals.SUCCESS_GATE)
        p90 = percentile(self.latencies, vitals.LATENCY_PERCENTILE)
        latency_gate = NO_DATA if p90 is None else GOOD if p90 <= vitals.LATENCY_GATE_MS else POOR
        return {
            "results": self.results,
            "succeeded": self.succeeded,
            "successRate": rate,
            "successGate": success_gate,
            "p90Ms": p90,
            "latencyGate": latency_gate,
            "failures": dict(self.failures.most_common()),
        }


@dataclass
class TypeTally:
    intents: dict[str, IntentTally] = field(default_factory=lambda: {i: IntentTally() for i in vitals.GRADED_INTENTS})
    compared: int = 0
    accurate: int = 0
    freshness: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        rate, gate = _rate_gate(self.accurate, self.compared, vitals.STATE_ACCURACY_GATE)
        return {
            **{intent: tally.figures() for intent, tally in self.intents.items()},
            "stateAccuracy": {"compared": self.compared, "accurate": self.accurate, "rate": rate, "gate": gate},
            "freshness": {
                "reports": len(self.freshness),
                "p50Ms": percentile(self.freshness, 50),
                "p95Ms": percentile(self.freshness, 95),
            },
        }


@dataclass(frozen=True)
class Report:
    at_ms: int
    states_hash: str


def accuracy_of(
    queries: Iterable[Mapping[str, Any]], reports: Mapping[tuple[str, str], Sequence[Report]], grace_ms: int
) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """(QUERY result, whether HomeGraph held the states it answered) for each successful QUERY result that can be
    judged: HomeGraph held them if the device's last report before the answer carried the same states, or a report
    within `grace_ms` after it did (the change was on its way). Without a report before the answer and none
    matching after it, the result is not judged: what HomeGraph held is not in the logs."""
    for query in queries:
        at, answered = query.get("atMs"), query.get("statesHash")
        key = (str(query.get("userHash")), str(query.get("deviceId")))
        if not isinstance(at, int) or not isinstance(answered, str) or key not in reports:
            continue
        device_reports = reports[key]
        times = [report.at_ms for report in device_reports]
        before = bisect.bisect_right(times, at)
        if before and device_reports[before - 1].states_hash == answered:
            yield query, True
            continue
        following = device_reports[before:]
        if any(r.states_hash == answered and r.at_ms - at <= grace_ms for r in following):
            yield query, True
        elif before:
            yield query, False


def compute(lines: Iterable[Mapping[str, Any]], grace_ms: int = int(DEFAULT_GRACE_S * 1000)) -> dict[str, Any]:
    """The figures of the lines (see the module docstring); `good` is False when any gate is POOR."""
    counted: Counter[str] = Counter()
    by_type: dict[str, TypeTally] = defaultdict(TypeTally)
    calls: Counter[str] = Counter()
    call_successes: Counter[str] = Counter()
    call_failures: Counter[str] = Counter()
    queries: list[Mapping[str, Any]] = []
    reports: dict[tuple[str, str], list[Report]] = defaultdict(list)
    for line in lines:
        message = str(line.get("message"))
        counted[message] += 1
        if message == vitals.DEVICE_RESULT_LINE and line.get("intent") in vitals.GRADED_INTENTS:
            device_type = str(line.get("deviceType") or "unknown")
            for tally in (by_type[device_type], by_type[OVERALL]):
                tally.intents[str(line["intent"])].add(line)
            if line.get("intent") == "QUERY" and line.get("statesHash"):
                queries.append(line)
        elif message == vitals.HOMEGRAPH_CALL_LINE:
            method = str(line.get("method") or "?")
            calls[method] += 1
            if vitals.homegraph_call_succeeded(line.get("status")):
                call_successes[method] += 1
            else:
                call_failures[f"{method} {line.get('status') or 'no answer'}"] += 1
        elif message == vitals.DEVICE_REPORTED_LINE:
            device_type = str(line.get("deviceType") or "unknown")
            freshness = line.get("freshnessMs")
            if isinstance(freshness, int | float) and not isinstance(freshness, bool):
                for tally in (by_type[device_type], by_type[OVERALL]):
                    tally.freshness.append(float(freshness))
            at, states = line.get("atMs"), line.get("statesHash")
            if isinstance(at, int) and isinstance(states, str):
                reports[(str(line.get("userHash")), str(line.get("deviceId")))].append(Report(at, states))
    for device_reports in reports.values():
        device_reports.sort(key=lambda report: report.at_ms)
    for query, accurate in accuracy_of(queries, reports, grace_ms):
        for tally in (by_type[str(query.get("deviceType") or "unknown")], by_type[OVERALL]):
            tally.compared += 1
            tally.accurate += int(accurate)

    total_calls, total_successes = sum(calls.values()), sum(call_successes.values())
    rate, gate = _rate_gate(total_successes, total_calls, vitals.SUCCESS_GATE)
    figures: dict[str, Any] = {
        "lines": dict(counted),
        "homegraph": {
            "calls": total_calls,
            "succeeded": total_successes,
            "successRate": rate,
            "gate": gate,
            "byMethod": {m: {"calls": n, "succeeded": call_successes[m]} for m, n in sorted(calls.items())},
            "failures": dict(call_failures.most_common()),
        },
        "deviceTypes": {name: by_type[name].figures() for name in sorted(by_type) if name != OVERALL},
        "overall": by_type[OVERALL].figures(),
        "gates": {
            "success": vitals.SUCCESS_GATE,
            "latencyMs": vitals.LATENCY_GATE_MS,
            "stateAccuracy": vitals.STATE_ACCURACY_GATE,
        },
        "graceMs": grace_ms,
    }
    figures["poor"] = poor_gates(figures)
    figures["good"] = not figures["poor"]
    return figures


def poor_gates(figures: Mapping[str, Any]) -> list[str]:
    """Each gate that is POOR, said in one line."""
    poor: list[str] = []
    homegraph = figures["homegraph"]
    if homegraph["gate"] == POOR:
        poor.append(
            f"HomeGraph calls: {_percent(homegraph['successRate'])} succeeded (< {_percent(vitals.SUCCESS_GATE)})"
        )
    for name, figures_of in [*figures["deviceTypes"].items(), (OVERALL, figures["overall"])]:
        shown = name.removeprefix(TYPE_PREFIX)
        for intent in vitals.GRADED_INTENTS:
            of = figures_of[intent]
            if of["successGate"] == POOR:
                poor.append(f"{shown} {intent}: {_percent(of['successRate'])} succeeded (< 99.5 %)")
            if of["latencyGate"] == POOR:
                poor.append(f"{shown} {intent}: p90 {of['p90Ms']:.0f} ms (> {vitals.LATENCY_GATE_MS} ms)")
        accuracy = figures_of["stateAccuracy"]
        if accuracy["gate"] == POOR:
            poor.append(f"{shown} state accuracy (estimate): {_percent(accuracy['rate'])} (< 99.5 %)")
    return poor


# Showing them


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f} %"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _cell(value: str, gate: str) -> str:
    return f"{value} {gate}" if gate != NO_DATA else "no data"


def render(figures: Mapping[str, Any], source: str) -> str:
    homegraph = figures["homegraph"]
    counted = figures["lines"]
    out = [
        f"Home Vitals from {source}: {sum(counted.values())} lines "
        f"({counted.get(vitals.DEVICE_RESULT_LINE, 0)} device results, {homegraph['calls']} HomeGraph calls, "
        f"{counted.get(vitals.DEVICE_REPORTED_LINE, 0)} device reports)",
        f"Gates (Google's, {vitals.SOURCE}): success >= 99.5 %, p90 latency <= {vitals.LATENCY_GATE_MS} ms, "
        "state accuracy >= 99.5 %",
        "",
        f"Calls to HomeGraph (whole project): {_cell(_percent(homegraph['successRate']), homegraph['gate'])}"
        f" of {homegraph['calls']}",
    ]
    if homegraph["failures"]:
        out.append("  failed: " + ", ".join(f"{k} x{n}" for k, n in homegraph["failures"].items()))
    header = ("device type", "QUERY success", "EXECUTE success", "QUERY p90", "EXECUTE p90", "state accuracy*",
              "freshness p50/p95")  # fmt: skip
    rows = [header]
    for name, of in [*figures["deviceTypes"].items(), (OVERALL, figures["overall"])]:
        accuracy, fresh = of["stateAccuracy"], of["freshness"]
        rows.append(
            (
                name.removeprefix(TYPE_PREFIX),
                _cell(f"{_percent(of['QUERY']['successRate'])} ({of['QUERY']['results']})", of["QUERY"]["successGate"]),
                _cell(
                    f"{_percent(of['EXECUTE']['successRate'])} ({of['EXECUTE']['results']})",
                    of["EXECUTE"]["successGate"],
                ),
                _cell(_ms(of["QUERY"]["p90Ms"]), of["QUERY"]["latencyGate"]),
                _cell(_ms(of["EXECUTE"]["p90Ms"]), of["EXECUTE"]["latencyGate"]),
                _cell(f"{_percent(accuracy['rate'])} ({accuracy['compared']})", accuracy["gate"]),
                f"{_ms(fresh['p50Ms'])} / {_ms(fresh['p95Ms'])}" if fresh["reports"] else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out.append("")
    out += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    failures = [
        f"  {name.removeprefix(TYPE_PREFIX)} {intent}: " + ", ".join(f"{code} x{n}" for code, n in failed.items())
        for name, of in figures["deviceTypes"].items()
        for intent in vitals.GRADED_INTENTS
        if (failed := of[intent]["failures"])
    ]
    if failures:
        out += ["", "Failed results (not exempt):", *failures]
    out += [
        "",
        f"* estimated: QUERY answers whose states equal what HomeGraph was last told (a report within "
        f"{figures['graceMs'] / 1000:g} s after the answer counts too); docs/vitals.md",
        "",
        "Every gate GOOD." if figures["good"] else "POOR: " + "; ".join(figures["poor"]),
    ]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    try:
        now_ms = int(time.time() * 1000)
        after = since_ms(args.since, now_ms) if args.since else None
        if args.project:
            if args.files:
                raise Refused("give log files or --project, not both")
            lines: Iterable[dict[str, Any]] = read_cloud_logging(args.project, after or since_ms(DEFAULT_SINCE, now_ms))
            source = f"Cloud Logging of {args.project} (since {args.since or DEFAULT_SINCE})"
        elif args.files:
            lines = read_files(args.files, sys.stdin)
            source = "stdin" if args.files == ["-"] else ", ".join(args.files)
        else:
            paths = local_stack_logs()
            if not paths:
                raise Refused(
                    f"no logs in {local_stack.state_dir()} (start the stack with `make up`), and no file given"
                )
            lines = read_files([str(path) for path in paths], sys.stdin)
            source = f"the local stack's logs ({local_stack.state_dir()})"
        if after is not None:
            lines = [line for line in lines if isinstance(line.get("atMs"), int) and line["atMs"] >= after]
        figures = compute(lines, int(args.grace_s * 1000))
    except Refused as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    if not figures["lines"]:
        print(f"error: no Home Vitals lines in {source} (docs/vitals.md lists them)", file=sys.stderr)
        return 1
    print(json.dumps({"source": source, **figures}, indent=2) if args.json else render(figures, source))
    return 0 if figures["good"] else 1


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "vitals",
        help="Google's Home Vitals figures (success, latency, state accuracy, freshness) from the functions' logs",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("files", nargs="*", help="log files, - for stdin (default: the local stack's logs)")
    parser.add_argument("--project", help="read Cloud Logging of this project (Application Default Credentials)")
    parser.add_argument("--since", help=f"only lines this recent, e.g. 24h, 90m (Cloud Logging: {DEFAULT_SINCE})")
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    parser.add_argument(
        "--grace-s",
        type=float,
        default=DEFAULT_GRACE_S,
        help="state accuracy: a report this soon after a QUERY answer counts as HomeGraph holding it (default 5)",
    )
    # It reads logs, not Firestore: tools/cli.py's checks of where to act are not for it.
    parser.set_defaults(run=run, uses_project=False)
