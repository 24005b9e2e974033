"""The course planner alone: its skips never pass over a first session that would complete a course."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from services.booking.courses import planner
from services.booking.courses.planner import Blocked, Candidate, Spacing

TZ = "America/New_York"
ZERO = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def _one_by_one(spacing: Spacing, free: list[Candidate]) -> list[Candidate] | None:
    """Every first start in turn, each greedy held to its window: the plan the planner must match."""
    for first in free:
        chosen = [first]
        for candidate in free:
            if len(chosen) == spacing.sessions:
                break
            trial = [*(c.start for c in chosen), candidate.start]
            if candidate.start > chosen[-1].start and all(
                planner.violation(spacing, trial, TZ, n) is None for n in range(len(trial))
            ):
                chosen.append(candidate)
        if len(chosen) == spacing.sessions:
            return chosen
    return None


def _alternatives(spacing: Spacing, chosen: list[Candidate], free: list[Candidate]) -> list[list[datetime]]:
    """Every free start tried for every session: what the planner's narrowed look must find."""
    starts = [c.start for c in chosen]
    found: list[list[datetime]] = []
    for index, at in enumerate(starts):
        others: list[datetime] = []
        for candidate in free:
            trial = [*starts[:index], candidate.start, *starts[index + 1 :]]
            kept = sorted(trial) == trial and planner.violation(spacing, trial, TZ, index) is None
            if candidate.start != at and kept and len(others) < 3:
                others.append(candidate.start)
        found.append(others)
    return found


@pytest.mark.parametrize("seed", range(300))
def test_the_earliest_full_schedule_matches_trying_every_first_start(seed: int) -> None:
    rng = random.Random(seed)
    spacing = Spacing(
        sessions=rng.randint(2, 6),
        min_gap=timedelta(hours=rng.choice([2, 12, 24, 48])),
        max_per_week=rng.choice([None, 1, 2, 3]),
        within=rng.choice([None, timedelta(days=rng.randint(3, 21))]),
        length=timedelta(hours=1),
        day_zones=rng.choice([(), (TZ,), (TZ, "Asia/Kathmandu")]),  # a one-a-day type, a daily limit
    )
    # Free starts in bursts of a few days (a clinic with free spells between full ones) across 90 days.
    hours: set[int] = set()
    for _ in range(rng.randint(1, 8)):
        day = rng.randrange(90)
        hours.update(24 * (day + rng.randrange(4)) + rng.randrange(8, 18) for _ in range(rng.randint(1, 12)))
    free = [Candidate(ZERO + timedelta(hours=h), 1) for h in sorted(hours)]
    expected = _one_by_one(spacing, free)
    if expected is None:
        with pytest.raises(Blocked):
            planner.earliest(spacing, free, free, TZ, free[-1].start, tries=len(free))
    else:
        found = planner.earliest(spacing, free, free, TZ, free[-1].start, tries=len(free))
        assert [c.start for c in found] == [c.start for c in expected]
        alternatives = planner.alternatives(spacing, found, free, TZ)
        assert [[c.start for c in a] for a in alternatives] == _alternatives(spacing, found, free)


def test_several_times_of_day_allow_a_start_in_any_one_of_them() -> None:
    morning, afternoon, evening = (time(0), time(11, 59)), (time(12), time(16, 59)), (time(17), time(23, 59))
    # The three parts of the day are the whole day; overlapping and touching windows are joined, apart ones kept.
    assert planner.merged([evening, morning, afternoon]) == (planner.ALL_DAY,)
    assert planner.merged([(time(9), time(11)), (time(10), time(12)), (time(12, 1), time(13))]) == (
        (time(9), time(13)),
    )
    assert planner.merged([evening, morning]) == (morning, evening)
    prefs = planner.Preferences(weekdays=frozenset({1}), windows=planner.merged([evening, morning]))
    tuesday = datetime(2026, 3, 3, tzinfo=UTC)  # a Tuesday; New York is UTC-5 then

    def at(hour: int, minute: int = 0) -> bool:
        return prefs.allows(tuesday + timedelta(hours=hour + 5, minutes=minute), TZ)

    assert [at(9), at(11, 59), at(12), at(16, 59), at(17), at(23, 59)] == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]
    assert not prefs.allows(tuesday + timedelta(days=1, hours=14), TZ)  # Wednesday: not a chosen day
    # The planner's candidates are what the windows allow: a schedule of mornings and evenings only.
    free = [
        Candidate(tuesday + timedelta(days=d, hours=h + 5), 1) for d in range(0, 21) for h in (10, 14, 18)
    ]
    allowed = [c for c in free if planner.Preferences(windows=prefs.windows).allows(c.start, TZ)]
    spacing = Spacing(
        sessions=4, min_gap=timedelta(hours=6), max_per_week=None, within=None, length=timedelta(hours=1)
    )
    chosen = planner.earliest(spacing, allowed, allowed, TZ, allowed[-1].start, 5)
    assert [c.start.hour - 5 for c in chosen] == [10, 18, 10, 18]
