"""Wall-clock conversions at the edges of daylight saving time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from shared.timeutil import ceil_to, day_bounds_utc, floor_to, format_local, is_time_zone, local_to_utc


def test_gap_times_move_forward_and_repeated_times_take_the_first() -> None:
    assert local_to_utc(date(2026, 3, 8), time(2, 30), "America/New_York") == datetime(
        2026, 3, 8, 7, 30, tzinfo=UTC
    )
    assert local_to_utc(date(2026, 11, 1), time(1, 30), "America/New_York") == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )


def test_day_bounds_span_23_and_25_hours_on_change_days() -> None:
    start, end = day_bounds_utc(date(2026, 3, 29), "Europe/London")
    assert (end - start).total_seconds() == 23 * 3600
    start, end = day_bounds_utc(date(2026, 4, 5), "Australia/Sydney")
    assert (end - start).total_seconds() == 25 * 3600


@pytest.mark.parametrize("name", ["", " UTC", "../etc/passwd", "/etc/localtime", "Not/AZone"])
def test_only_real_iana_names_are_zones(name: str) -> None:
    assert not is_time_zone(name)


def test_rounding_and_wording() -> None:
    moment = datetime(2026, 3, 3, 15, 7, 30, tzinfo=UTC)
    assert floor_to(moment, 5) == datetime(2026, 3, 3, 15, 5, tzinfo=UTC)
    assert ceil_to(moment, 5) == datetime(2026, 3, 3, 15, 10, tzinfo=UTC)
    assert (
        format_local(datetime(2026, 3, 10, 13, tzinfo=UTC), "America/New_York")
        == "Tue 10 Mar 2026, 9:00 AM EDT"
    )
