"""Free slots: wall-clock hours across DST changes, overrides, notice, horizon, buffers and daily limits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from services.booking.slots import DayHours, SlotRules, availability_windows, free_slots, offers
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup

RULES = SlotRules(
    duration=timedelta(minutes=60),
    buffer_before=timedelta(0),
    buffer_after=timedelta(0),
    interval=timedelta(minutes=60),
    min_notice=timedelta(0),
    horizon=timedelta(days=3650),
    daily_limit=None,
)
NINE_TO_FIVE = {d: [DayHours(time(9), time(17))] for d in range(7)}

# (zone, the local date of a DST change, offsets before and after it)
DST_CHANGES = [
    ("America/New_York", date(2026, 3, 8), -5, -4),
    ("America/New_York", date(2026, 11, 1), -4, -5),
    ("Europe/London", date(2026, 3, 29), 0, 1),
    ("Europe/London", date(2026, 10, 25), 1, 0),
    ("Australia/Sydney", date(2026, 4, 5), 11, 10),
    ("Australia/Sydney", date(2026, 10, 4), 10, 11),
]


def _slots_for_week(tz: str, around: date) -> list[datetime]:
    first, last = around - timedelta(days=3), around + timedelta(days=3)
    windows = availability_windows(weekly=NINE_TO_FIVE, overrides={}, tz=tz, first_day=first, last_day=last)
    return free_slots(
        windows=windows,
        blocks=[],
        day_counts={},
        rules=RULES,
        provider_tz=tz,
        now=datetime(2020, 1, 1, tzinfo=UTC),
        range_start=windows[0].start,
        range_end=windows[-1].end,
    )


@pytest.mark.parametrize(("tz", "change_day", "before", "after"), DST_CHANGES)
def test_wall_clock_hours_hold_across_dst(tz: str, change_day: date, before: int, after: int) -> None:
    slots = _slots_for_week(tz, change_day)
    by_day: dict[date, list[datetime]] = {}
    for start in slots:
        local = start.astimezone(ZoneInfo(tz))
        by_day.setdefault(local.date(), []).append(local)
    assert len(by_day) == 7
    for day, starts in by_day.items():
        assert [s.hour for s in starts] == list(range(9, 17)), day
        assert all(s.minute == 0 for s in starts)
    offsets = {day: starts[0].utcoffset() for day, starts in by_day.items()}
    assert offsets[change_day - timedelta(days=1)] == timedelta(hours=before)
    assert offsets[change_day + timedelta(days=1)] == timedelta(hours=after)
    # The same local hour is a different UTC instant on either side of the change.
    utc_hours = {by_day[change_day + timedelta(days=k)][0].astimezone(UTC).hour for k in (-1, 1)}
    assert len(utc_hours) == 2


def test_window_through_spring_gap_has_only_real_times() -> None:
    overnight = {6: [DayHours(time(1), time(4))]}  # Sunday 8 March 2026, US clocks jump 02:00 -> 03:00
    windows = availability_windows(
        weekly=overnight,
        overrides={},
        tz="America/New_York",
        first_day=date(2026, 3, 8),
        last_day=date(2026, 3, 8),
    )
    assert windows[0].end - windows[0].start == timedelta(hours=2)
    slots = free_slots(
        windows=windows,
        blocks=[],
        day_counts={},
        rules=RULES,
        provider_tz="America/New_York",
        now=datetime(2020, 1, 1, tzinfo=UTC),
        range_start=windows[0].start,
        range_end=windows[0].end,
    )
    local = [s.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") for s in slots]
    assert local == ["01:00", "03:00"]


def test_autumn_repeated_hour_is_not_offered_twice() -> None:
    overnight = {6: [DayHours(time(0), time(3))]}  # Sunday 1 November 2026, 01:00-02:00 happens twice
    windows = availability_windows(
        weekly=overnight,
        overrides={},
        tz="America/New_York",
        first_day=date(2026, 11, 1),
        last_day=date(2026, 11, 1),
    )
    assert windows[0].end - windows[0].start == timedelta(hours=4)
    slots = free_slots(
        windows=windows,
        blocks=[],
        day_counts={},
        rules=RULES,
        provider_tz="America/New_York",
        now=datetime(2020, 1, 1, tzinfo=UTC),
        range_start=windows[0].start,
        range_end=windows[0].end,
    )
    assert len(slots) == len(set(slots)) == 4


def _get_slots(
    client: FlaskClient, setup: object, start: str, end: str, tz: str | None = None
) -> list[dict[str, str]]:
    query = {
        "provider_id": setup.provider_id,  # type: ignore[attr-defined]
        "appointment_type_id": setup.type_id,  # type: ignore[attr-defined]
        "start": start,
        "end": end,
    }
    if tz:
        query["tz"] = tz
    response = client.get("/api/v1/slots", query_string=query)
    assert response.status_code == 200, response.json
    return response.json["slots"]


@given(
    zone=st.sampled_from([tz for tz, *_ in DST_CHANGES]),
    day=st.sampled_from([d for _, d, *_ in DST_CHANGES]),
    opens=st.integers(0, 20),
    hours=st.integers(1, 6),
    duration=st.sampled_from([15, 20, 30, 45, 60]),
    interval=st.sampled_from([10, 15, 20, 30, 60]),
    notice_minutes=st.integers(0, 48 * 60),
    horizon_hours=st.integers(0, 24 * 5),
    window=st.integers(0, 8),
    position=st.integers(0, 1000),
    off_grid=st.booleans(),
    ahead_minutes=st.integers(-120, 6 * 24 * 60),
)
@settings(max_examples=400)
def test_a_start_is_offered_exactly_when_the_free_slots_list_it(
    zone: str,
    day: date,
    opens: int,
    hours: int,
    duration: int,
    interval: int,
    notice_minutes: int,
    horizon_hours: int,
    window: int,
    position: int,
    off_grid: bool,
    ahead_minutes: int,
) -> None:
    # The booking's early check (offers) and the slot search (free_slots) must agree on the hours, the grid
    # and the clock, across DST changes; bookings aside, which the claims decide. The start is taken near a
    # window (before it, on or off its grid, into its last minutes, past its end), the clock some time before.
    rules = SlotRules(
        duration=timedelta(minutes=duration),
        buffer_before=timedelta(0),
        buffer_after=timedelta(0),
        interval=timedelta(minutes=interval),
        min_notice=timedelta(minutes=notice_minutes),
        horizon=timedelta(hours=horizon_hours),
        daily_limit=None,
    )
    weekly = {d: [DayHours(time(opens), time(min(opens + hours, 23), 55))] for d in range(7)}
    windows = availability_windows(
        weekly=weekly,
        overrides={},
        tz=zone,
        first_day=day - timedelta(days=4),
        last_day=day + timedelta(days=4),
    )
    near = windows[min(window, len(windows) - 1)]
    grid_starts = (near.end - near.start) // rules.interval  # from one step before the window to two past it
    steps = position % (grid_starts + 3) - 1
    start = near.start + steps * rules.interval + timedelta(minutes=5 if off_grid else 0)
    now = start - timedelta(minutes=ahead_minutes)
    listed = free_slots(
        windows=windows,
        blocks=[],
        day_counts={},
        rules=rules,
        provider_tz=zone,
        now=now,
        range_start=windows[0].start,
        range_end=windows[-1].end,
    )
    assert offers(start, windows=windows, rules=rules, now=now) == (start in listed)
    assert all(offers(listed_start, windows=windows, rules=rules, now=now) for listed_start in listed)


@pytest.mark.parametrize(
    ("provider_tz", "caller_tz", "change"),
    [
        ("America/New_York", "Europe/London", "2026-03-08"),
        ("Europe/London", "Australia/Sydney", "2026-03-29"),
        ("Australia/Sydney", "America/New_York", "2026-04-05"),
    ],
)
def test_api_slots_in_caller_zone_across_dst(
    app: Flask, client: FlaskClient, provider_tz: str, caller_tz: str, change: str
) -> None:
    with time_machine.travel(datetime(2026, 2, 20, tzinfo=UTC), tick=True):
        setup = make_setup(
            app, tz=provider_tz, weekdays=tuple(range(7)), duration_minutes=60, slot_interval_minutes=60
        )
        day = date.fromisoformat(change)
        start = datetime.combine(day - timedelta(days=2), time(0), tzinfo=ZoneInfo(provider_tz))
        end = datetime.combine(day + timedelta(days=3), time(0), tzinfo=ZoneInfo(provider_tz))
        slots = _get_slots(client, setup, start.isoformat(), end.isoformat(), tz=caller_tz)
    assert len(slots) == 5 * 8
    for slot in slots:
        shown = datetime.fromisoformat(slot["start"])
        # Expressed in the caller's zone...
        assert shown.utcoffset() == shown.astimezone(ZoneInfo(caller_tz)).utcoffset()
        # ...and always 09:00-16:00 starts in the provider's.
        assert 9 <= shown.astimezone(ZoneInfo(provider_tz)).hour <= 16


def test_overrides_close_a_day_and_change_hours(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    closed = client.put(
        f"/api/v1/providers/{setup.provider_id}/overrides/2026-03-03", json={"closed": True}, headers=STAFF
    )
    assert closed.status_code == 200, closed.json
    short = client.put(
        f"/api/v1/providers/{setup.provider_id}/overrides/2026-03-04",
        json={"closed": False, "windows": [{"start": "13:00", "end": "14:30"}]},
        headers=STAFF,
    )
    assert short.status_code == 200, short.json
    slots = _get_slots(client, setup, "2026-03-03T00:00:00-05:00", "2026-03-06T00:00:00-05:00")
    days: dict[str, list[str]] = {}
    for slot in slots:
        days.setdefault(slot["start"][:10], []).append(slot["start"][11:16])
    assert "2026-03-03" not in days
    assert days["2026-03-04"] == ["13:00", "13:15", "13:30", "13:45"]
    assert len(days["2026-03-05"]) == 30  # 09:00 ... 16:15 for a 45-minute visit every 15 minutes

    assert (
        client.delete(
            f"/api/v1/providers/{setup.provider_id}/overrides/2026-03-03", headers=STAFF
        ).status_code
        == 204
    )
    reopened = _get_slots(client, setup, "2026-03-03T00:00:00-05:00", "2026-03-04T00:00:00-05:00")
    assert len(reopened) == 30


def test_minimum_notice_and_horizon(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app, min_notice_minutes=24 * 60, horizon_days=3)
    slots = _get_slots(client, setup, "2026-03-02T00:00:00Z", "2026-03-10T00:00:00Z")
    starts = [datetime.fromisoformat(s["start"]) for s in slots]
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert min(starts) >= now + timedelta(hours=24)
    assert max(starts) <= now + timedelta(days=3)


def test_buffers_block_neighbouring_slots(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app, buffer_before_minutes=15, buffer_after_minutes=30)
    booked = client.post(
        "/api/v1/bookings", json=booking_body(setup, "2026-03-03T11:00:00-05:00"), headers=STAFF
    )
    assert booked.status_code == 201, booked.json
    starts = [
        s["start"][11:16]
        for s in _get_slots(client, setup, "2026-03-03T10:00:00-05:00", "2026-03-03T13:00:00-05:00")
    ]
    # 11:00-11:45 holds 10:45-12:15; a neighbour needs its own 15 minutes before and 30 after clear of that.
    assert starts == ["12:30", "12:45"]


def test_daily_limit_closes_the_day(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app, daily_limit=2)
    for start in ("2026-03-03T09:00:00-05:00", "2026-03-03T14:00:00-05:00"):
        assert (
            client.post("/api/v1/bookings", json=booking_body(setup, start), headers=STAFF).status_code == 201
        )
    tuesday = _get_slots(client, setup, "2026-03-03T00:00:00-05:00", "2026-03-04T00:00:00-05:00")
    wednesday = _get_slots(client, setup, "2026-03-04T00:00:00-05:00", "2026-03-05T00:00:00-05:00")
    assert tuesday == []
    assert len(wednesday) == 30
    third = client.post(
        "/api/v1/bookings", json=booking_body(setup, "2026-03-03T16:00:00-05:00"), headers=STAFF
    )
    assert third.status_code == 409


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "2026-03-03T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "end"),
        ({"start": "2026-03-03T00:00:00Z", "end": "2026-06-03T00:00:00Z"}, "end"),
        ({"start": "2026-03-03T00:00:00", "end": "2026-03-04T00:00:00Z"}, "start"),
        ({"start": "yesterday", "end": "2026-03-04T00:00:00Z"}, "start"),
        ({"start": "2026-03-03T00:00:00Z", "end": "2026-03-04T00:00:00Z", "tz": "Mars/Olympus"}, "tz"),
    ],
)
def test_bad_slot_queries_name_the_field(
    app: Flask, client: FlaskClient, clock: object, query: dict[str, str], field: str
) -> None:
    setup = make_setup(app)
    response = client.get(
        "/api/v1/slots",
        query_string={"provider_id": setup.provider_id, "appointment_type_id": setup.type_id, **query},
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in {p["name"] for p in response.json["invalid_params"]}
