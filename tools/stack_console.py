"""The local stack's terminal: a line per piece as it comes up, then a line per request or event as it happens.

    22:10:05.114  fulfillment            EXECUTE          3f2a9c1d…  desk-lamp            SUCCESS            38 ms  page
    22:10:05.190  sync_on_device_change  document.written 3f2a9c1d…  desk-lamp            200                41 ms
    22:10:05.260  homegraph              reportState      3f2a9c1d…  desk-lamp            200                 2 ms

Sources: the HomeGraph stand-in's record (every call Google makes to the fulfillment, every call the functions make
to HomeGraph), the local Eventarc's deliveries (Firestore events to sync_on_device_change), and the functions' own
logs (their warnings and errors; every line with --verbose). Failures are red and warnings yellow on a colour
terminal (NO_COLOR turns colour off). Once the terminal is gone (SIGHUP), writes are dropped, not raised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

RED, YELLOW, DIM, RESET = "\033[31m", "\033[33m", "\033[2m", "\033[0m"
HOMEGRAPH_METHODS = {"reportStateAndNotification": "reportState"}
# Lines the servers print that are no problem: gunicorn's control socket is one per machine, and every function
# after the first finds it taken.
HARMLESS = ("Control server error",)


def _clock(epoch_s: float | None) -> str:
    moment = dt.datetime.fromtimestamp(epoch_s) if epoch_s else dt.datetime.now()
    return moment.strftime("%H:%M:%S.%f")[:-3]


def _short_user(user: Any) -> str:
    text = str(user or "-")
    return text if len(text) <= 12 else text[:8] + "…"


def _devices(ids: list[str]) -> str:
    text = ",".join(ids) or "-"
    return text if len(text) <= 20 else text[:19] + "…"


class Console:
    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, verbose: bool = False, color: bool | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.verbose = verbose
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.color = (tty and not os.environ.get("NO_COLOR")) if color is None else color
        self._lock = threading.Lock()
        self._gone = False  # the terminal went away: nothing more to say

    def say(self, text: str = "", level: str | None = None) -> None:
        """A line of the banner: shown even with --quiet."""
        if self.color and level:
            text = {"error": RED, "warning": YELLOW, "dim": DIM}.get(level, "") + text + RESET
        with self._lock:
            if self._gone:
                return
            try:
                self.stream.write(text + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # EIO after a hang-up, or a closed stream
                self._gone = True

    def component(self, name: str, url: str, seconds: float) -> None:
        if not self.quiet:
            self.say(f"  {name:<24} {url:<28} up in {seconds:4.1f} s")

    def event(
        self,
        at: float | None,
        function: str,
        what: str,
        user: Any,
        devices: list[str],
        outcome: str,
        ms: float | None,
        *,
        level: str | None = None,
        by: str = "",
    ) -> None:
        if self.quiet:
            return
        took = f"{ms:6.0f} ms" if ms is not None else " " * 9
        line = (
            f"{_clock(at)}  {function:<22} {what:<16} {_short_user(user):<10} {_devices(devices):<20} "
            f"{outcome[:40]:<18} {took}"
        )
        self.say(line + (f"  {by}" if by else ""), level)

    # the sources

    def standin_call(self, call: Mapping[str, Any]) -> None:
        """A call the HomeGraph stand-in recorded: Google -> fulfillment, or a function -> HomeGraph."""
        from tools import home_page

        method = str(call.get("method", ""))
        at, finished = call.get("at"), call.get("finishedAt")
        ms = (finished - at) * 1000 if isinstance(at, float) and isinstance(finished, float) else None
        if method.startswith("fulfillment."):
            function, what = "fulfillment", method.removeprefix("fulfillment.")
            by = {"standin": "google", "cli": "cli", "page": "page"}.get(str(call.get("caller")), "")
            if call.get("reason") and call.get("caller") == "standin":
                by = f"google ({call['reason']})"
        else:
            function, what, by = "homegraph", HOMEGRAPH_METHODS.get(method, method), ""
        level = "error" if home_page.is_failure(call) else None
        devices = home_page.device_ids_of(call)
        self.event(
            at, function, what, call.get("agentUserId"), devices, home_page.outcome_of(call), ms, level=level, by=by
        )

    def delivery(self, summary: Mapping[str, Any], function: str = "sync_on_device_change") -> None:
        """A Firestore event the local Eventarc delivered (with its retries)."""
        parts = str(summary.get("document", "")).split("/")
        user = parts[parts.index("users") + 1] if "users" in parts[:-1] else None
        device = parts[parts.index("devices") + 1] if "devices" in parts[:-1] else None
        statuses = [str(s) if s is not None else "no answer" for s in summary.get("statuses") or []]
        outcome = ", ".join(statuses) or "not delivered"
        if len(statuses) > 1:
            outcome += f" ({len(statuses)} attempts)"
        received, finished = summary.get("receivedAt"), summary.get("finishedAt")
        ms = (finished - received) * 1000 if isinstance(received, float) and isinstance(finished, float) else None
        level = None if summary.get("delivered") else "error"
        self.event(received, function, "document.written", user, [device] if device else [], outcome, ms, level=level)

    def log_line(self, function: str, line: str) -> None:
        """A line a function logged: warnings and errors (everything with --verbose); tracebacks in red."""
        text = line.rstrip()
        if not text:
            return
        try:
            entry = json.loads(text)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            if any(known in text for known in HARMLESS):
                return
            noisy = not any(word in text for word in ("Traceback", "Error", "[ERROR]", "[CRITICAL]"))
            if self.verbose or not noisy:
                self.event(None, function, "log", None, [], text[:140], None, level=None if noisy else "error")
            return
        severity = str(entry.get("severity", "INFO"))
        if severity not in ("WARNING", "ERROR", "CRITICAL") and not self.verbose:
            return
        details = [str(entry.get("message", ""))]
        details += [f"{key}={entry[key]}" for key in ("reason", "errorCode", "status") if entry.get(key)]
        devices = [str(entry["deviceId"])] if entry.get("deviceId") else []
        level = "error" if severity in ("ERROR", "CRITICAL") else "warning" if severity == "WARNING" else None
        summary = "; ".join(details)[:140]
        self.event(None, function, severity.lower(), entry.get("agentUserId"), devices, summary, None, level=level)


class LogTail:
    """Follows the functions' log files from their current end, and hands each new line to the console."""

    def __init__(self, console: Console, interval_s: float = 0.25) -> None:
        self.console = console
        self.interval_s = interval_s
        self._files: dict[str, tuple[Path, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-log-tail", daemon=True)

    def follow(self, function: str, path: Path) -> None:
        """From now on: what is in the file already is an earlier run's."""
        with self._lock:
            self._files[function] = (path, path.stat().st_size if path.exists() else 0)

    def start(self) -> LogTail:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        pending: dict[str, str] = {}
        while not self._stop.wait(self.interval_s):
            with self._lock:
                files = dict(self._files)
            for function, (path, offset) in files.items():
                with contextlib.suppress(OSError):
                    with open(path, "rb") as log:
                        log.seek(offset)
                        chunk = log.read()
                    if not chunk:
                        continue
                    with self._lock:
                        self._files[function] = (path, offset + len(chunk))
                    text = pending.pop(function, "") + chunk.decode("utf-8", "replace")
                    *lines, rest = text.split("\n")
                    pending[function] = rest
                    for line in lines:
                        self.console.log_line(function, line)
