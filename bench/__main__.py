"""`python -m bench [NAME ...]`: runs the named benchmarks (default: all) and prints their tables."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("fulfillment", "webhook", "load", "request_sync", "report_state", "faults")


def main(argv: list[str]) -> int:
    for name in argv or BENCHMARKS:
        importlib.import_module(f"bench.{name}").main()
    return 0


raise SystemExit(main(sys.argv[1:]))
