"""Planning a course: the earliest full schedule that keeps every spacing rule, from free starts given."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from shared.timeutil import day_bounds_utc, local_date, to_zone


@dataclass(frozen=True)
class Spacing:
    """A course template's rules, as the planner needs them."""

    sessions: int
    min_gap: timedelta  # between the starts of two sessions
    max_per_week: int | None  # Monday to Sunday, in the clinic's zone
    within: timedelta | None  # from the first start to the last session's end
    length: timedelta  # one session's visit, for the window's end
    # Zones in which no two sessions may fall on one day (the patient's one-a-day rule, a daily limit).
    day_zones: tuple[str, ...] = ()


ALL_DAY = (time(0), time(23, 59))


def merged(windows: Sequence[tuple[time, time]]) -> tuple[tuple[time, time], ...]:
    """``windows`` (earliest, latest: start times, both included) sorted, with overlapping or touching ones
    joined, so the same hours always read the same (morning, afternoon and evening are the whole day)."""
    out: list[tuple[time, time]] = []
    for earliest, latest in sorted(windows):
        if out and _minute(earliest) <= _minute(out[-1][1]) + 1:
            out[-1] = (out[-1][0], max(out[-1][1], latest))
        else:
            out.append((earliest, latest))
    return tuple(out)


def _minute(at: time) -> int:
    return at.hour * 60 + at.minute


@dataclass(frozen=True)
class Preferences:
    """When the patient can come: weekdays (0 = Monday) and times of day (start windows, each from its
    earliest to its latest start, both included), in the clinic's zone. Build windows with ``merged``."""

    weekdays: frozenset[int] = frozenset(range(7))
    windows: tuple[tuple[time, time], ...] = (ALL_DAY,)

    def allows(self, start: datetime, tz: str) -> bool:
        """Whether ``start`` falls on a preferred weekday within one of the preferred windows."""
        local = to_zone(start, tz)
        at = local.time()
        return local.weekday() in self.weekdays and any(lo <= at <= hi for lo, hi in self.windows)


class Candidate(NamedTuple):
    """A free start and the provider who has it (a tuple: a busy clinic's plan makes tens of thousands)."""

    start: datetime
    provider_id: int


class Blocked(Exception):
    """No full plan exists; ``rule`` names what stops session ``index`` (1-based)."""

    def __init__(self, index: int, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.index, self.rule, self.detail = index, rule, detail


@functools.lru_cache(maxsize=16384)
def _week(start: datetime, tz: str) -> date:
    """The Monday of ``start``'s week in ``tz`` (cached: the providers of a clinic share their starts)."""
    day = local_date(start, tz)
    return day - timedelta(days=day.weekday())


@functools.lru_cache(maxsize=16384)
def _next_day(start: datetime, zones: tuple[str, ...]) -> datetime:
    """The first instant on a later day than ``start``'s in every one of ``zones`` (``start`` if none)."""
    return max((day_bounds_utc(local_date(start, z), z)[1] for z in zones), default=start)


def _earliest_after(spacing: Spacing, before: datetime) -> datetime:
    """The earliest start the session after one at ``before`` may have: a gap on, and on a later day."""
    return max(before + spacing.min_gap, _next_day(before, spacing.day_zones))


def violation(spacing: Spacing, starts: Sequence[datetime], tz: str, index: int) -> tuple[str, str] | None:
    """The rule session ``index`` (0-based) of ``starts`` breaks, the others kept; None if none."""
    at = starts[index]
    if index > 0 and at - starts[index - 1] < spacing.min_gap:
        return "min_hours_between", "too soon after the session before"
    if index + 1 < len(starts) and starts[index + 1] - at < spacing.min_gap:
        return "min_hours_between", "too close to the session after"
    if index > 0 and at < _next_day(starts[index - 1], spacing.day_zones):
        return "one_a_day", "on the same day as the session before"
    if index + 1 < len(starts) and starts[index + 1] < _next_day(at, spacing.day_zones):
        return "one_a_day", "on the same day as the session after"
    if spacing.max_per_week is not None:
        week = _week(at, tz)
        same = sum(1 for s in starts if _week(s, tz) == week)
        if same > spacing.max_per_week:
            return "max_per_week", f"more than {spacing.max_per_week} sessions in that week"
    if spacing.within is not None and starts and max(starts) + spacing.length - min(starts) > spacing.within:
        return "within_days", "the course would run past its window"
    return None


def earliest(
    spacing: Spacing,
    firsts: Sequence[Candidate],
    candidates: Sequence[Candidate],
    tz: str,
    searched_until: datetime,
    tries: int,
) -> list[Candidate]:
    """The earliest full schedule whose first session is one of ``firsts`` (sorted, all in ``candidates``).

    From each first start tried, the greedy runs on past the window. Any later first's greedy is, session by
    session, no earlier (its plan with this first start put back keeps the gap and the weekly cap), so if
    this greedy ends at L no first before L - within + length completes, and if it runs out of free starts,
    no later first does either. At most ``tries`` firsts are tried; Blocked names the furthest attempt.
    """
    starts = [c.start for c in candidates]
    weeks = [_week(at, tz) for at in starts]
    firsts_at = [c.start for c in firsts]
    best: Blocked | None = None
    i = 0
    for _ in range(tries):
        if i >= len(firsts):
            break
        first = firsts[i]
        deadline = first.start + spacing.within - spacing.length if spacing.within is not None else None
        chosen, capped = _greedy(spacing, first, candidates, starts, weeks, tz)
        late = next((n for n, c in enumerate(chosen, 1) if deadline is not None and c.start > deadline), None)
        if late is None and len(chosen) == spacing.sessions:
            return chosen
        if late is not None:
            blocked = Blocked(
                late, "within_days", f"session {late} cannot be held within the course's window"
            )
        else:
            blocked = _why(len(chosen) + 1, capped, deadline is not None and deadline < searched_until)
        if best is None or blocked.index > best.index:
            best = blocked
        if len(chosen) < spacing.sessions or spacing.within is None:
            break  # ran out of free starts: so would every later first
        floor = chosen[-1].start - spacing.within + spacing.length
        i = max(i + 1, bisect.bisect_left(firsts_at, floor))
    raise best or no_first()


def no_first() -> Blocked:
    """Why a plan with no first start to try is blocked."""
    return Blocked(
        1, "availability", "No provider and chair are free for a first session in the course's window"
    )


def _greedy(
    spacing: Spacing,
    first: Candidate,
    candidates: Sequence[Candidate],
    starts: list[datetime],
    weeks: list[date],
    tz: str,
) -> tuple[list[Candidate], bool]:
    """The greedy schedule from ``first`` with no window, as far as it goes; whether a weekly cap bit."""
    chosen = [first]
    held: dict[date, int] = {_week(first.start, tz): 1}
    capped = False
    while len(chosen) < spacing.sessions:
        i = bisect.bisect_left(starts, _earliest_after(spacing, chosen[-1].start))
        while (
            i < len(starts)
            and spacing.max_per_week is not None
            and held.get(weeks[i], 0) >= spacing.max_per_week
        ):
            capped = True
            i = bisect.bisect_right(weeks, weeks[i], lo=i)  # on to the next week's first start
        if i >= len(starts):
            break
        same = candidates[i : bisect.bisect_right(starts, starts[i], lo=i)]
        chosen.append(next((c for c in same if c.provider_id == first.provider_id), same[0]))
        held[weeks[i]] = held.get(weeks[i], 0) + 1
    return chosen, capped


def _why(index: int, capped: bool, past_window: bool) -> Blocked:
    if past_window:
        return Blocked(index, "within_days", f"session {index} cannot be held within the course's window")
    if capped:
        return Blocked(index, "max_per_week", f"session {index} finds no week with room for it")
    return Blocked(
        index,
        "availability",
        f"no provider and chair are free for session {index} within the booking horizon",
    )


def alternatives(
    spacing: Spacing, chosen: Sequence[Candidate], candidates: Sequence[Candidate], tz: str, count: int = 3
) -> list[list[Candidate]]:
    """For each session, up to ``count`` other free starts it could move to with the others kept."""
    starts = [c.start for c in chosen]
    free = [c.start for c in candidates]
    result: list[list[Candidate]] = []
    for index in range(len(chosen)):
        others: list[Candidate] = []
        # Only starts a gap clear of both neighbours can keep the rules: look there alone.
        lo = bisect.bisect_left(free, _earliest_after(spacing, starts[index - 1])) if index else 0
        hi = (
            len(free)
            if index + 1 == len(starts)
            else bisect.bisect_right(free, starts[index + 1] - spacing.min_gap)
        )
        seen = {starts[index]}  # a start taken or refused once is so for every provider who has it
        for candidate in candidates[lo:hi]:
            if candidate.start in seen:
                continue
            seen.add(candidate.start)
            trial = [*starts[:index], candidate.start, *starts[index + 1 :]]
            if sorted(trial) == trial and violation(spacing, trial, tz, index) is None:
                others.append(candidate)
                if len(others) == count:
                    break
        result.append(others)
    return result
