"""The staff API: a booking's messages and their delivery status, and messages by status."""

from __future__ import annotations

import uuid
from datetime import timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from tests.notify.conftest import MONDAY_NOON, STAFF, deliver, work
from tests.notify.factories import Booking

START = MONDAY_NOON + timedelta(days=3, hours=3)


def test_a_bookings_messages_with_their_status(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=START, sms_consent=False)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    deliver(app, booking.cancel(at=MONDAY_NOON))
    response = client.get(f"/api/v1/bookings/{booking.id}/messages", headers=STAFF)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["booking_id"] == str(booking.id)
    assert body["version"] == 2
    assert body["status"] == "cancelled"
    assert body["protocol"] == "video-consultation"
    by_key = {(m["step"], m["channel"], m["booking_version"]): m for m in body["messages"]}
    assert by_key[("confirmation", "email", 1)]["status"] == "sent"
    assert by_key[("confirmation", "email", 1)]["delivery_status"] == "delivered"
    assert by_key[("confirmation", "sms", 1)]["status"] == "skipped"
    assert by_key[("confirmation", "sms", 1)]["reason"] == "the patient did not consent to SMS"
    assert by_key[("reminder-24h", "email", 1)]["status"] == "cancelled"
    assert by_key[("cancelled", "email", 2)]["status"] == "queued"
    # Staff see where each message stands, not its text or the patient's contact details.
    assert not {"recipient", "body", "subject"} & set(body["messages"][0])


def test_messages_by_status(app: Flask, client: FlaskClient, clock: time_machine.Coordinates) -> None:
    deliver(app, Booking(start=START, sms_consent=False).confirmed(at=MONDAY_NOON))
    skipped = client.get("/api/v1/messages", query_string={"status": "skipped"}, headers=STAFF)
    assert skipped.status_code == 200
    assert skipped.json["total"] == 3
    assert {m["channel"] for m in skipped.json["items"]} == {"sms"}
    bad = client.get("/api/v1/messages", query_string={"status": "lost"}, headers=STAFF)
    assert bad.status_code == 422
    assert bad.json["invalid_params"][0]["name"] == "status"


def test_unknown_booking_and_missing_key(client: FlaskClient) -> None:
    unknown = client.get(f"/api/v1/bookings/{uuid.uuid4()}/messages", headers=STAFF)
    assert unknown.status_code == 404
    assert unknown.mimetype == "application/problem+json"
    assert client.get(f"/api/v1/bookings/{uuid.uuid4()}/messages").status_code == 401
    assert client.get("/api/v1/messages", headers={"Authorization": "Bearer nope"}).status_code == 401
