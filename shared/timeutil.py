"""Time helpers: aware UTC everywhere inside, wall-clock time only at the edges.

Code reads the clock only through :func:`utcnow`, so tests can move time with ``time_machine``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name``; raise ``ValueError`` for an unknown or non-IANA name."""
    # Only names tzdata lists: another may be a directory ("America") or too long a file name for the OS.
    if name not in _zone_names():
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is a known IANA time zone."""
    try:
        zone(name)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """All IANA zone names, sorted (for pickers)."""
    return tuple(sorted(available_timezones()))


def local_to_utc(day: date, at: time, tz: str) -> datetime:
    """Convert a wall-clock time on ``day`` in ``tz`` to UTC.

    A time that does not exist (inside a spring-forward gap) moves forward by the gap, as a wall clock would;
    an ambiguous time (the repeated hour in autumn) is taken at its first occurrence.
    """
    # fold=0 gives both rules: zoneinfo reads a gap time with the offset from before the gap (so it lands
    # later in real time) and an ambiguous time with its first offset.
    return datetime.combine(day, at, tzinfo=zone(tz)).astimezone(UTC)


def to_zone(moment: datetime, tz: str) -> datetime:
    """Express an aware ``moment`` in zone ``tz``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(zone(tz))


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a naive value is refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a time zone offset is required")
    return moment.astimezone(UTC)


def local_date(moment: datetime, tz: str) -> date:
    """The calendar date of ``moment`` in ``tz``."""
    return to_zone(moment, tz).date()


def day_bounds_utc(day: date, tz: str) -> tuple[datetime, datetime]:
    """UTC start (inclusive) and end (exclusive) of calendar day ``day`` in ``tz``."""
    return local_to_utc(day, time(0), tz), local_to_utc(day + timedelta(days=1), time(0), tz)


def floor_to(moment: datetime, minutes: int) -> datetime:
    """Round an aware UTC ``moment`` down to a multiple of ``minutes`` since the epoch."""
    step = minutes * 60
    seconds = int(moment.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def ceil_to(moment: datetime, minutes: int) -> datetime:
    """Round an aware UTC ``moment`` up to a multiple of ``minutes`` since the epoch."""
    floored = floor_to(moment, minutes)
    return floored if floored == moment else floored + timedelta(minutes=minutes)


def format_local(moment: datetime, tz: str) -> str:
    """Human wording of ``moment`` in ``tz``, e.g. ``Tue 10 Mar 2026, 9:00 AM EDT``."""
    local = to_zone(moment, tz)
    hour = local.strftime("%I").lstrip("0")
    return f"{local:%a} {local.day} {local:%b %Y}, {hour}:{local:%M %p} {local.tzname()}"


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time that names its offset (``2026-03-02T11:55:00+00:00``, ``...Z``), in UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment.astimezone(UTC)
