"""Points of the log an auditor names: RFC 3339 times and log positions.

A point is inclusive: "the state at 03:12:00" is what every event recorded at or before that instant
made of the server; "at position 1200" includes the event at position 1200.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict, overload

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?(?P<tz>[Zz]|[+-]\d{2}:\d{2})$"
)


class BadPoint(ValueError):
    """An input that is not a time or a position; the message says what was expected."""


def parse_time(text: str, name: str = "time") -> datetime:
    """An RFC 3339 time with an offset (`2026-11-28T03:12:00Z`, `...+01:00`), as aware UTC."""
    m = _RFC3339.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise BadPoint(f"{name} {text!r} is not an RFC 3339 time with a time zone, e.g. 2026-11-28T03:12:00Z")
    frac = (m["frac"] or "")[:7]  # Python keeps microseconds; finer digits are dropped
    tz = "+00:00" if m["tz"] in ("Z", "z") else m["tz"]
    clock = m["time"]
    if clock.endswith(":60"):  # a leap second (RFC 3339 allows it; Python cannot hold it): its minute's last instant
        clock, frac = clock[:-2] + "59", ".999999"
    try:
        ts = datetime.fromisoformat(f"{m['date']}T{clock}{frac}{tz}")
    except ValueError as exc:
        raise BadPoint(f"{name} {text!r} is not a valid time: {exc}") from None
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before the first instant Python holds: as a bound, the same
        return (datetime.min if ts.year == 1 else datetime.max).replace(tzinfo=UTC)


MAX_POSITION = 2**63 - 1  # the largest position either database holds (a 64-bit integer)


def parse_position(text: str | int, name: str = "position") -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise BadPoint(f"{name} must be a whole number (a log position), not {text!r}") from None
    if value < 0:
        raise BadPoint(f"{name} must be 0 or more, not {value}")
    if value > MAX_POSITION:  # a database would refuse to compare with it: a 500 instead of a 400
        raise BadPoint(f"{name} must be at most {MAX_POSITION} (a log position), not {value}")
    return value


class PointDoc(TypedDict, total=False):
    """A point as the audit prints it: one of the three keys."""

    position: int
    time: str
    end: bool


@dataclass(frozen=True)
class Point:
    """Where to cut the log: at a position, at a time, or (both None) at its end."""

    position: int | None = None
    time: datetime | None = None

    def describe(self) -> PointDoc:
        if self.position is not None:
            return {"position": self.position}
        if self.time is not None:
            return {"time": self.time.isoformat().replace("+00:00", "Z")}
        return {"end": True}

    def includes(self, position: int, recorded_at: datetime) -> bool:
        if self.position is not None:
            return position <= self.position
        if self.time is not None:
            return recorded_at <= self.time
        return True


END = Point()


def parse_point(text: str | None, name: str = "at") -> Point:
    """A position (digits) or an RFC 3339 time; empty means the end of the log."""
    if text is None or str(text).strip() == "":
        return END
    text = str(text).strip()
    if text.isdigit():
        return Point(position=parse_position(text, name))
    try:
        return Point(time=parse_time(text, name))
    except BadPoint:
        raise BadPoint(
            f"{name} {text!r} is neither a log position (a whole number) nor an RFC 3339 time "
            "with a time zone, e.g. 2026-11-28T03:12:00Z"
        ) from None


@overload
def iso(ts: datetime) -> str: ...


@overload
def iso(ts: None) -> None: ...


def iso(ts: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, the one spelling the audit prints."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
