"""Planning a course: the earliest full schedule that keeps every spacing rule, from free starts given."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from shared.timeutil import local_date, to_zone


@dataclass(frozen=True)
class Spacing:
    """A course template's rules, as the planner needs them."""

    sessions: int
    min_gap: timedelta  # between the starts of two sessions
    max_per_week: int | None  # Monday to Sunday, in the clinic's zone
    within: timedelta | None  # from the first start to the last session's end
    length: timedelta  # one session's visit, for the window's end


@dataclass(frozen=True)
class Preferences:
    """When the patient can come: weekdays (0 = Monday) and a time of day, in the clinic's zone."""

    weekdays: frozenset[int] = frozenset(range(7))
    earliest: time = time(0)
    latest: time = time(23, 59)

    def allows(self, start: datetime, tz: str) -> bool:
        """Whether ``start`` falls on a preferred weekday within the preferred hours."""
        local = to_zone(start, tz)
        return local.weekday() in self.weekdays and self.earliest <= local.time() <= self.latest


@dataclass(frozen=True)
class Candidate:
    """A free start and the provider who has it."""

    start: datetime
    provider_id: int


class Blocked(Exception):
    """No full plan exists; ``rule`` names what stops session ``index`` (1-based)."""

    def __init__(self, index: int, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.index, self.rule, self.detail = index, rule, detail


def _week(start: datetime, tz: str) -> date:
    day = local_date(start, tz)
    return day - timedelta(days=day.weekday())


def violation(spacing: Spacing, starts: Sequence[datetime], tz: str, index: int) -> tuple[str, str] | None:
    """The rule session ``index`` (0-based) of ``starts`` breaks, the others kept; None if none."""
    at = starts[index]
    if index > 0 and at - starts[index - 1] < spacing.min_gap:
        return "min_hours_between", "too soon after the session before"
    if index + 1 < len(starts) and starts[index + 1] - at < spacing.min_gap:
        return "min_hours_between", "too close to the session after"
    if spacing.max_per_week is not None:
        week = _week(at, tz)
        same = sum(1 for s in starts if _week(s, tz) == week)
        if same > spacing.max_per_week:
            return "max_per_week", f"more than {spacing.max_per_week} sessions in that week"
    if spacing.within is not None and starts and max(starts) + spacing.length - min(starts) > spacing.within:
        return "within_days", "the course would run past its window"
    return None


def _fits(spacing: Spacing, chosen: list[datetime], at: datetime, tz: str) -> bool:
    if spacing.max_per_week is None:
        return True
    week = _week(at, tz)
    return sum(1 for s in chosen if _week(s, tz) == week) < spacing.max_per_week


def plan(
    spacing: Spacing,
    first: Candidate,
    candidates: Sequence[Candidate],
    tz: str,
    preferred: int | None,
    searched_until: datetime,
) -> list[Candidate]:
    """The earliest schedule starting with ``first``; raises Blocked naming the rule that stops it.

    ``candidates`` are every free start up to ``searched_until``, sorted (several providers may share one);
    at equal starts the ``preferred`` provider is taken.
    """
    starts = [c.start for c in candidates]
    deadline = first.start + spacing.within - spacing.length if spacing.within is not None else None
    chosen = [first]
    for index in range(2, spacing.sessions + 1):
        pick, capped = _next(spacing, chosen, candidates, starts, tz, preferred, deadline)
        if pick is None:
            raise _why(index, capped, deadline is not None and deadline < searched_until)
        chosen.append(pick)
    return chosen


def _next(
    spacing: Spacing,
    chosen: list[Candidate],
    candidates: Sequence[Candidate],
    starts: list[datetime],
    tz: str,
    preferred: int | None,
    deadline: datetime | None,
) -> tuple[Candidate | None, bool]:
    """The earliest candidate the rules allow after ``chosen``, and whether a weekly cap passed one over."""
    i = bisect.bisect_left(starts, chosen[-1].start + spacing.min_gap)
    capped = False
    while i < len(candidates):
        at = candidates[i].start
        if deadline is not None and at > deadline:
            break
        if _fits(spacing, [c.start for c in chosen], at, tz):
            same = [c for c in candidates[i:] if c.start == at]
            return next((c for c in same if c.provider_id == preferred), same[0]), capped
        capped = True
        i += 1
    return None, capped


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
    result: list[list[Candidate]] = []
    for index in range(len(chosen)):
        others: list[Candidate] = []
        for candidate in candidates:
            if candidate.start == starts[index] or any(o.start == candidate.start for o in others):
                continue
            trial = [*starts[:index], candidate.start, *starts[index + 1 :]]
            if sorted(trial) == trial and violation(spacing, trial, tz, index) is None:
                others.append(candidate)
                if len(others) == count:
                    break
        result.append(others)
    return result
