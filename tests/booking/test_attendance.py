"""Attendance: staff read and set it; notify's SMS reply events confirm it, once, for the version asked about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.booking import jobs
from shared.events import ATTENDANCE_CONFIRMED, SmsReplyEvent, dump_event
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup

TUESDAY_10 = "2026-03-03T10:00:00-05:00"
REPLIED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _book(app: Flask, client: FlaskClient) -> dict[str, Any]:
    created = client.post("/api/v1/bookings", json=booking_body(make_setup(app), TUESDAY_10), headers=STAFF)
    assert created.status_code == 201, created.json
    return dict(created.json)


def _reply(app: Flask, booking_id: str, version: int, *, event_id: uuid.UUID | None = None) -> str:
    payload = dump_event(
        SmsReplyEvent(
            booking_id=uuid.UUID(booking_id),
            booking_version=version,
            meaning=ATTENDANCE_CONFIRMED,
            replied_at=REPLIED,
            event_id=event_id or uuid.uuid4(),
        )
    )
    with app.app_context():
        return jobs.handle_sms_reply(payload)


def _attendance(client: FlaskClient, booking_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/bookings/{booking_id}/attendance", headers=STAFF)
    assert response.status_code == 200, response.json
    return dict(response.json)


def test_a_new_booking_is_unconfirmed_and_an_sms_reply_confirms_it_once(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client)
    assert _attendance(client, booking["id"])["state"] == "unconfirmed"
    event_id = uuid.uuid4()
    assert _reply(app, booking["id"], 1, event_id=event_id) == "applied"
    assert _reply(app, booking["id"], 1, event_id=event_id) == "duplicate"
    found = _attendance(client, booking["id"])
    assert (found["state"], found["source"], found["at"]) == ("confirmed", "sms", "2026-03-02T12:00:00+00:00")
    assert client.get(f"/api/v1/bookings/{booking['id']}", headers=STAFF).json["version"] == 1


def test_a_reply_about_a_version_that_moved_or_was_cancelled_confirms_nothing(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client)
    assert _reply(app, booking["id"], 1) == "applied"
    moved = client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule",
        json={"start": "2026-03-03T14:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    # The confirmation was for the old time: the moved visit is unconfirmed until the patient says so again.
    assert _attendance(client, booking["id"])["state"] == "unconfirmed"
    assert _reply(app, booking["id"], 1) == "stale"  # a reply that raced the reschedule
    client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=STAFF)
    assert _reply(app, booking["id"], 2) == "stale"  # and one that raced the cancel
    assert _attendance(client, booking["id"])["state"] == "unconfirmed"
    assert _reply(app, str(uuid.uuid4()), 1) == "unknown"


def test_staff_record_a_phone_confirmation_an_arrival_and_a_no_show(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client)
    url = f"/api/v1/bookings/{booking['id']}/attendance"
    by_phone = client.put(url, json={"state": "confirmed", "source": "phone"}, headers=STAFF)
    assert by_phone.status_code == 200, by_phone.json
    assert (by_phone.json["state"], by_phone.json["source"]) == ("confirmed", "phone")
    arrived = client.put(url, json={"state": "arrived"}, headers=STAFF)
    assert (arrived.json["state"], arrived.json["source"]) == ("arrived", "staff")
    # A late SMS reply never overwrites what staff saw on the day.
    assert _reply(app, booking["id"], 1) == "kept"
    assert _attendance(client, booking["id"])["state"] == "arrived"
    assert client.put(url, json={"state": "no_show"}, headers=STAFF).json["state"] == "no_show"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "maybe"}, "state"),
        ({}, "state"),
        ({"state": "confirmed", "source": "sms"}, "source"),
        ({"state": "confirmed", "at": "now"}, "at"),
        ({"state": 1}, "state"),
    ],
)
def test_bad_attendance_is_a_422_naming_the_field_and_changes_nothing(
    app: Flask, client: FlaskClient, clock: object, body: dict[str, Any], field: str
) -> None:
    booking = _book(app, client)
    response = client.put(f"/api/v1/bookings/{booking['id']}/attendance", json=body, headers=STAFF)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in str(response.json)
    assert _attendance(client, booking["id"])["state"] == "unconfirmed"


def test_attendance_of_no_booking_is_a_404_and_of_a_cancelled_one_a_409(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    missing = f"/api/v1/bookings/{uuid.uuid4()}/attendance"
    assert client.get(missing, headers=STAFF).status_code == 404
    assert client.put(missing, json={"state": "arrived"}, headers=STAFF).status_code == 404
    booking = _book(app, client)
    client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=STAFF)
    refused = client.put(
        f"/api/v1/bookings/{booking['id']}/attendance", json={"state": "arrived"}, headers=STAFF
    )
    assert refused.status_code == 409
    assert _attendance(client, booking["id"])["state"] == "unconfirmed"
    assert client.get(f"/api/v1/bookings/{booking['id']}/attendance").status_code == 401  # staff only


def test_the_readiness_list_shows_a_days_sessions_newest_change_first(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_setup(app)
    ids = []
    for start in (TUESDAY_10, "2026-03-03T11:00:00-05:00", "2026-03-04T10:00:00-05:00"):
        created = client.post("/api/v1/bookings", json=booking_body(setup, start), headers=STAFF)
        ids.append(created.json["id"])
    clock.shift(60)  # type: ignore[attr-defined]
    client.put(
        f"/api/v1/bookings/{ids[0]}/attendance", json={"state": "confirmed", "source": "phone"}, headers=STAFF
    )
    listed = client.get(f"/api/v1/readiness?clinic_id={setup.clinic_id}&day=2026-03-03", headers=STAFF)
    assert listed.status_code == 200, listed.json
    assert [row["booking_id"] for row in listed.json] == [ids[0], ids[1]]  # Tuesday only; the change first
    first = listed.json[0]
    assert (first["attendance"]["state"], first["attendance"]["source"]) == ("confirmed", "phone")
    assert first["patient_first_name"] == "Jordan"
    assert "intake" not in first
    assert listed.json[1]["attendance"]["state"] == "unconfirmed"
    other = client.get(
        f"/api/v1/readiness?clinic_id={setup.clinic_id}&day=2026-03-03&provider_id={setup.provider_id + 1}",
        headers=STAFF,
    )
    assert other.json == []


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("day=2026-03-03", 422, "clinic_id"),
        ("clinic_id=1&day=tuesday", 422, "day"),
        ("clinic_id=999&day=2026-03-03", 404, ""),
    ],
)
def test_a_bad_readiness_query_is_refused_naming_the_field(
    client: FlaskClient, query: str, status: int, field: str
) -> None:
    response = client.get(f"/api/v1/readiness?{query}", headers=STAFF)
    assert response.status_code == status
    assert field in str(response.json)
