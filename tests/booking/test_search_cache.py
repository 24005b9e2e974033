"""The slot cache never shows a slot that a change has taken away, and follows the clock exactly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup

RANGE = {"start": "2026-03-03T00:00:00-05:00", "end": "2026-03-05T00:00:00-05:00"}


def _starts(client: FlaskClient, setup: Any) -> list[str]:
    response = client.get(
        "/api/v1/slots",
        query_string={"provider_id": setup.provider_id, "appointment_type_id": setup.type_id, **RANGE},
    )
    assert response.status_code == 200
    return [s["start"] for s in response.json["slots"]]


def test_every_change_shows_at_once(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    first = _starts(client, setup)
    assert "2026-03-03T10:00:00-05:00" in first
    assert _starts(client, setup) == first  # served from the cache

    booking = client.post(
        "/api/v1/bookings", json=booking_body(setup, "2026-03-03T10:00:00-05:00"), headers=STAFF
    ).json
    after_booking = _starts(client, setup)
    assert "2026-03-03T10:00:00-05:00" not in after_booking
    assert "2026-03-03T09:30:00-05:00" not in after_booking  # would overlap 10:00-10:45

    client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule",
        json={"start": "2026-03-04T10:00:00-05:00"},
        headers=STAFF,
    )
    moved = _starts(client, setup)
    assert "2026-03-03T10:00:00-05:00" in moved
    assert "2026-03-04T10:00:00-05:00" not in moved

    client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={}, headers=STAFF)
    assert _starts(client, setup) == first

    client.put(
        f"/api/v1/providers/{setup.provider_id}/overrides/2026-03-03", json={"closed": True}, headers=STAFF
    )
    assert not [s for s in _starts(client, setup) if s.startswith("2026-03-03")]
    client.delete(f"/api/v1/providers/{setup.provider_id}/overrides/2026-03-03", headers=STAFF)
    assert _starts(client, setup) == first

    client.put(
        f"/api/v1/providers/{setup.provider_id}/availability",
        json={"rules": [{"weekday": 1, "start": "12:00", "end": "13:00"}]},
        headers=STAFF,
    )
    assert _starts(client, setup) == ["2026-03-03T12:00:00-05:00", "2026-03-03T12:15:00-05:00"]

    client.patch(f"/api/v1/appointment-types/{setup.type_id}", json={"duration_minutes": 60}, headers=STAFF)
    assert _starts(client, setup) == ["2026-03-03T12:00:00-05:00"]

    client.patch(
        f"/api/v1/providers/{setup.provider_id}", json={"time_zone": "America/Chicago"}, headers=STAFF
    )
    # Same wall-clock hours, now in Chicago (and shown in the provider's zone).
    assert _starts(client, setup) == ["2026-03-03T12:00:00-06:00"]

    client.patch(f"/api/v1/providers/{setup.provider_id}", json={"active": False}, headers=STAFF)
    paused = client.get(
        "/api/v1/slots",
        query_string={"provider_id": setup.provider_id, "appointment_type_id": setup.type_id, **RANGE},
    )
    assert paused.status_code == 409


def test_notice_and_horizon_follow_the_clock(app: Flask, client: FlaskClient, clock: Any) -> None:
    setup = make_setup(app, min_notice_minutes=60)
    clock.move_to("2026-03-03T14:20:00Z")  # 09:20 in New York
    early = _starts(client, setup)
    assert early[0] == "2026-03-03T10:30:00-05:00"
    clock.shift(timedelta(minutes=30))  # 09:50: 10:30 is now inside the hour of notice
    assert _starts(client, setup)[0] == "2026-03-03T11:00:00-05:00"


def _book(client: FlaskClient, setup: Any, start: str, email: str) -> int:
    return client.post(
        "/api/v1/bookings", json=booking_body(setup, start, email=email), headers=STAFF
    ).status_code


def test_bookings_follow_every_change_of_hours(app: Flask, client: FlaskClient, clock: object) -> None:
    # A booking is checked against the provider's hours from a cache kept across bookings (a month at a
    # time); each kind of change of hours must reach it at once.
    setup = make_setup(app)
    assert _book(client, setup, "2026-03-03T10:00:00-05:00", "a@example.com") == 201  # fills the cache

    base = f"/api/v1/providers/{setup.provider_id}"
    client.put(f"{base}/overrides/2026-03-04", json={"closed": True}, headers=STAFF)
    assert _book(client, setup, "2026-03-04T10:00:00-05:00", "b@example.com") == 409
    client.delete(f"{base}/overrides/2026-03-04", headers=STAFF)
    assert _book(client, setup, "2026-03-04T10:00:00-05:00", "b@example.com") == 201

    client.put(
        f"{base}/overrides/2026-03-05",
        json={"closed": False, "windows": [{"start": "18:00", "end": "20:00"}]},
        headers=STAFF,
    )
    assert _book(client, setup, "2026-03-05T10:00:00-05:00", "c@example.com") == 409
    assert _book(client, setup, "2026-03-05T18:00:00-05:00", "c@example.com") == 201

    client.put(
        f"{base}/availability",
        json={"rules": [{"weekday": 0, "start": "13:00", "end": "17:00"}]},
        headers=STAFF,
    )
    assert _book(client, setup, "2026-03-09T10:00:00-04:00", "d@example.com") == 409  # Monday morning: gone
    assert _book(client, setup, "2026-03-10T14:00:00-04:00", "d@example.com") == 409  # Tuesday: gone
    assert _book(client, setup, "2026-03-09T13:00:00-04:00", "d@example.com") == 201

    client.patch(base, json={"time_zone": "America/Chicago"}, headers=STAFF)
    # Same wall-clock hours, now in Chicago: 13:00 New York time is 12:00 there, before the hours open.
    assert _book(client, setup, "2026-03-16T13:00:00-04:00", "e@example.com") == 409
    assert _book(client, setup, "2026-03-16T13:00:00-05:00", "e@example.com") == 201
