"""Bookings through the staff API: create, read, list, reschedule, cancel, idempotency, versions, events."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.booking.models import Booking, DayClaim, OutboxEvent, Patient, SlotClaim
from shared.db import get_db
from shared.events import load_event
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup

TUESDAY_10 = "2026-03-03T10:00:00-05:00"
TUESDAY_14 = "2026-03-03T14:00:00-05:00"


def _count(app: Flask, model: Any, *where: Any) -> int:
    with app.app_context(), get_db().transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _events(app: Flask) -> list[dict[str, Any]]:
    with app.app_context(), get_db().transaction() as session:
        return [row.payload for row in session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))]


def test_create_read_and_list(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    created = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF)
    assert created.status_code == 201, created.json
    booking = created.json
    assert booking["status"] == "confirmed"
    assert booking["version"] == 1
    assert booking["start"] == "2026-03-03T15:00:00+00:00"
    assert booking["end"] == "2026-03-03T15:45:00+00:00"
    assert booking["patient"]["phone"] == "+14155552671"
    assert booking["manage_url"].startswith("http://127.0.0.1:8001/manage/")

    read = client.get(f"/api/v1/bookings/{booking['id']}", headers=STAFF)
    assert read.status_code == 200
    assert read.json["id"] == booking["id"]

    listed = client.get("/api/v1/bookings", query_string={"provider_id": setup.provider_id}, headers=STAFF)
    assert listed.json["total"] == 1
    assert [b["id"] for b in listed.json["items"]] == [booking["id"]]

    (event,) = _events(app)
    loaded = load_event(event)
    assert loaded.type == "booking.confirmed"
    assert str(loaded.booking.id) == booking["id"]
    assert loaded.booking.version == 1
    assert loaded.booking.patient.phone == "+14155552671"
    assert _count(app, SlotClaim) == 9  # 45 minutes of 5-minute granules


def test_same_patient_is_recognised(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    first = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF)
    second = client.post(
        "/api/v1/bookings", json=booking_body(setup, TUESDAY_14, email="JORDAN@example.com"), headers=STAFF
    )
    assert first.json["patient"]["id"] == second.json["patient"]["id"]
    assert _count(app, Patient) == 1


def test_reschedule_then_cancel(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    booking = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF).json

    moved = client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule",
        json={"start": TUESDAY_14, "expected_version": 1},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    assert moved.json["version"] == 2
    assert moved.json["start"] == "2026-03-03T19:00:00+00:00"
    assert moved.json["manage_url"] != booking["manage_url"]

    # The old time is free again: another patient can take it.
    other = client.post(
        "/api/v1/bookings", json=booking_body(setup, TUESDAY_10, email="other@example.com"), headers=STAFF
    )
    assert other.status_code == 201

    stale = client.post(
        f"/api/v1/bookings/{booking['id']}/cancel", json={"expected_version": 1}, headers=STAFF
    )
    assert stale.status_code == 409
    assert stale.json["current_version"] == 2

    cancelled = client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={}, headers=STAFF)
    assert cancelled.status_code == 200
    assert cancelled.json["status"] == "cancelled"
    assert cancelled.json["version"] == 3
    assert cancelled.json["cancelled_by"] == "staff"

    again = client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={}, headers=STAFF)
    assert again.status_code == 200
    assert again.json["version"] == 3

    no_move = client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule", json={"start": TUESDAY_14}, headers=STAFF
    )
    assert no_move.status_code == 409

    types = [
        (e["type"], e["booking"]["version"]) for e in _events(app) if e["booking"]["id"] == booking["id"]
    ]
    assert types == [("booking.confirmed", 1), ("booking.rescheduled", 2), ("booking.cancelled", 3)]
    # Written without a second validation pass, every event still loads as its consumers load it.
    loaded = [load_event(e).type for e in _events(app)]
    assert loaded == ["booking.confirmed", "booking.rescheduled", "booking.confirmed", "booking.cancelled"]
    rescheduled = load_event(_events(app)[1])
    assert rescheduled.previous is not None
    assert rescheduled.previous.start.isoformat() == "2026-03-03T15:00:00+00:00"
    assert _count(app, SlotClaim, SlotClaim.booking_id == Booking.id, Booking.status == "cancelled") == 0


def test_daily_claims_follow_reschedule_and_cancel(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app, daily_limit=1)
    booking = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF).json
    moved = client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule",
        json={"start": "2026-03-04T10:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    # Tuesday's place is free again, Wednesday's is taken.
    tuesday = client.post(
        "/api/v1/bookings", json=booking_body(setup, TUESDAY_14, email="b@example.com"), headers=STAFF
    )
    assert tuesday.status_code == 201
    wednesday = client.post(
        "/api/v1/bookings",
        json=booking_body(setup, "2026-03-04T15:00:00-05:00", email="c@example.com"),
        headers=STAFF,
    )
    assert wednesday.status_code == 409
    client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={}, headers=STAFF)
    assert _count(app, DayClaim) == 1


def test_idempotency_key_returns_the_same_booking(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    body = booking_body(setup, TUESDAY_10)
    headers = {**STAFF, "Idempotency-Key": "3f1c-retry-me"}
    first = client.post("/api/v1/bookings", json=body, headers=headers)
    second = client.post("/api/v1/bookings", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json["id"] == second.json["id"]
    assert _count(app, Booking) == 1
    assert len(_events(app)) == 1

    different = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_14), headers=headers)
    assert different.status_code == 422
    assert different.json["invalid_params"][0]["name"] == "Idempotency-Key"
    assert _count(app, Booking) == 1


def test_slot_outside_hours_or_taken_is_a_conflict_with_alternatives(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_setup(app)
    night = client.post(
        "/api/v1/bookings", json=booking_body(setup, "2026-03-03T22:00:00-05:00"), headers=STAFF
    )
    assert night.status_code == 409
    assert night.json["alternatives"]
    client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF)
    overlapping = client.post(
        "/api/v1/bookings",
        json=booking_body(setup, "2026-03-03T10:30:00-05:00", email="x@example.com"),
        headers=STAFF,
    )
    assert overlapping.status_code == 409
    assert overlapping.json["type"].endswith("/slot-unavailable")
    assert "2026-03-03T15:45:00+00:00" in overlapping.json["alternatives"]
    assert _count(app, Booking) == 1


def test_unknown_and_mismatched_references(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    other = make_setup(app, slug="other")
    assert (
        client.get("/api/v1/bookings/00000000-0000-0000-0000-000000000000", headers=STAFF).status_code == 404
    )
    wrong_type = booking_body(setup, TUESDAY_10)
    wrong_type["appointment_type_id"] = other.type_id
    response = client.post("/api/v1/bookings", json=wrong_type, headers=STAFF)
    assert response.status_code == 422
    assert response.json["invalid_params"][0]["name"] == "appointment_type_id"
    missing = client.post(
        "/api/v1/bookings", json={**booking_body(setup, TUESDAY_10), "provider_id": 999}, headers=STAFF
    )
    assert missing.status_code == 404
    assert _count(app, Booking) == 0


def test_staff_api_requires_a_key(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic ZGV2LWFwaS1rZXk6"}):
        response = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/providers", headers={}).status_code == 401
    assert _count(app, Booking) == 0
