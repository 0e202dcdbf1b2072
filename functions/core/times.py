"""RFC 3339 times, the one parser and formatter of the project (state messages, CloudEvents, Pub/Sub envelopes)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

# RFC 3339 section 5.6: a full date, "T", a full time with an optional fraction, and "Z" or a numeric offset. The
# letters may be lower case (section 5.6, NOTE).
_RFC3339 = re.compile(
    r"^(?P<whole>\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>[Zz]|[+-]\d\d:\d\d)$"
)


@dataclass(frozen=True)
class Instant:
    epoch_us: int
    whole_seconds: bool  # no fraction was given: the true instant is anywhere in that second

    @property
    def epoch_ms(self) -> int:
        return self.epoch_us // 1000


def parse_rfc3339(text: object) -> Instant:
    """The instant an RFC 3339 time names; ValueError when `text` is not one (a time without an offset is not)."""
    match = _RFC3339.match(str(text if text is not None else "").strip())
    if not match:
        raise ValueError(f"not an RFC 3339 time: {str(text)[:40]!r}")
    zone = "+00:00" if match["zone"] in ("Z", "z") else match["zone"]
    try:
        whole = dt.datetime.fromisoformat(match["whole"].upper() + zone)
    except ValueError as problem:  # e.g. month 13
        raise ValueError(f"not an RFC 3339 time: {problem}") from problem
    fraction = match["fraction"]
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return Instant(int(whole.timestamp()) * 1_000_000 + micros, fraction is None)


def parse_time_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 time; ValueError if it is not one."""
    return parse_rfc3339(text).epoch_ms


def format_time_ms(epoch_ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, as the project writes every time it sends."""
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
