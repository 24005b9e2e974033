"""Free slots from weekly availability, date overrides and existing bookings."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from shared.timeutil import local_date, local_to_utc


@dataclass(frozen=True)
class Window:
    """A span of availability as UTC instants."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class DayHours:
    """Wall-clock windows for one weekday or one dated override."""

    start: time
    end: time


@dataclass(frozen=True)
class SlotRules:
    """The parts of an appointment type that shape its slots."""

    duration: timedelta
    buffer_before: timedelta
    buffer_after: timedelta
    interval: timedelta
    min_notice: timedelta
    horizon: timedelta
    daily_limit: int | None
    # How long from the start the provider is needed (None: the whole visit); see AppointmentType.
    provider_hold: timedelta | None = None

    @property
    def held(self) -> timedelta:
        """How long from the start the provider is held (buffers aside)."""
        return self.duration if self.provider_hold is None else self.provider_hold


def availability_windows(
    *,
    weekly: Mapping[int, Sequence[DayHours]],
    overrides: Mapping[date, Sequence[DayHours] | None],
    tz: str,
    first_day: date,
    last_day: date,
) -> list[Window]:
    """UTC windows for each local day from ``first_day`` to ``last_day`` inclusive.

    ``overrides`` maps a date to its own windows, or to ``None`` when the provider is closed that day.
    """
    windows: list[Window] = []
    day = first_day
    while day <= last_day:
        hours = overrides[day] if day in overrides else weekly.get(day.weekday(), ())
        for h in sorted(hours or (), key=lambda h: h.start):
            start, end = local_to_utc(day, h.start, tz), local_to_utc(day, h.end, tz)
            if start < end:
                windows.append(Window(start, end))
        day += timedelta(days=1)
    return windows


def free_slots(
    *,
    windows: Iterable[Window],
    blocks: Sequence[tuple[datetime, datetime]],
    day_counts: Mapping[date, int],
    rules: SlotRules,
    provider_tz: str,
    now: datetime,
    range_start: datetime,
    range_end: datetime,
) -> list[datetime]:
    """Start instants of the free slots that begin in ``[range_start, range_end)``.

    ``blocks`` are the (start, end) spans other bookings hold, sorted by start and not overlapping each
    other (the claims table guarantees that), so their ends are sorted too and one bisect finds a clash.
    """
    first, last = bookable_span(rules, now)
    earliest = max(range_start, first)
    block_ends = [end for _, end in blocks]
    starts: list[datetime] = []
    for window in windows:
        candidate = window.start
        while candidate + rules.duration <= window.end:
            if candidate >= range_end or candidate > last:
                break
            if candidate >= earliest and _is_free(candidate, rules, blocks, block_ends):
                limit = rules.daily_limit
                if limit is None or day_counts.get(local_date(candidate, provider_tz), 0) < limit:
                    starts.append(candidate)
            candidate += rules.interval
    return starts


def bookable_span(rules: SlotRules, now: datetime) -> tuple[datetime, datetime]:
    """The first and last instants a slot may start at, by the clock: after the notice, within the horizon."""
    return now + rules.min_notice, now + rules.horizon


def offers(start: datetime, *, windows: Iterable[Window], rules: SlotRules, now: datetime) -> bool:
    """Whether free_slots() would list ``start`` if no booking were in the way.

    The hours (``windows``), the type's grid inside them and the clock allow it; other bookings and daily
    limits are left to the caller (the booking's claims decide those, in the database).
    """
    first, last = bookable_span(rules, now)
    if not first <= start <= last:
        return False
    return any(
        window.start <= start
        and start + rules.duration <= window.end
        and (start - window.start) % rules.interval == timedelta(0)
        for window in windows
    )


def _is_free(
    start: datetime,
    rules: SlotRules,
    blocks: Sequence[tuple[datetime, datetime]],
    block_ends: Sequence[datetime],
) -> bool:
    occupied_start = start - rules.buffer_before
    occupied_end = start + rules.held + rules.buffer_after
    i = bisect.bisect_right(block_ends, occupied_start)
    return i >= len(blocks) or blocks[i][0] >= occupied_end


def blocked_span(start: datetime, rules: SlotRules) -> tuple[datetime, datetime]:
    """The span a booking starting at ``start`` holds, buffers included."""
    return start - rules.buffer_before, start + rules.held + rules.buffer_after
