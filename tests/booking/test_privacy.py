"""A whole booking flow leaves no patient data or link token in the logs."""

from __future__ import annotations

import io

from flask import Flask
from flask.testing import FlaskClient

from tests.booking.conftest import STAFF
from tests.booking.factories import PATIENT, booking_body, make_setup


def test_a_whole_booking_flow_logs_no_patient_data(
    app: Flask, client: FlaskClient, clock: object, log_stream: io.StringIO
) -> None:
    setup = make_setup(app)
    created = client.post(
        "/api/v1/bookings", json=booking_body(setup, "2026-03-03T10:00:00-05:00"), headers=STAFF
    )
    token = created.json["manage_url"].rsplit("/", 1)[1]
    client.get(f"/api/v1/manage/{token}")
    client.post(f"/api/v1/manage/{token}/cancel", json={})
    client.post("/api/v1/bookings", json=booking_body(setup, "bad"), headers=STAFF)
    output = log_stream.getvalue()
    assert "POST /api/v1/bookings 201" in output
    for secret in (PATIENT["name"], PATIENT["email"], PATIENT["phone"], "4155552671", token):
        assert secret not in output
