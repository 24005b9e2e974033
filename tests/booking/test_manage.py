"""A patient's manage link: opens one booking, for one purpose, until it expires or is superseded."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from services.booking import create_app
from shared import links
from shared.config import DEV_LINK_KEY
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup


def _book(
    client: FlaskClient, setup: Any, start: str = "2026-03-03T10:00:00-05:00", **patient: Any
) -> dict[str, Any]:
    response = client.post("/api/v1/bookings", json=booking_body(setup, start, **patient), headers=STAFF)
    assert response.status_code == 201, response.json
    return dict(response.json)


def _token(booking: dict[str, Any]) -> str:
    return str(booking["manage_url"].rsplit("/", 1)[1])


def test_link_shows_only_its_booking(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    booking = _book(client, setup)
    seen = client.get(f"/api/v1/manage/{_token(booking)}")
    assert seen.status_code == 200
    assert seen.json["id"] == booking["id"]
    assert seen.json["time_zone"] == "Europe/London"
    assert "patient" not in seen.json
    assert "email" not in json.dumps(seen.json)


def test_tampered_links_open_nothing(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    mine = _book(client, setup)
    theirs = _book(client, setup, "2026-03-03T14:00:00-05:00", email="them@example.com")
    token = _token(mine)
    payload, signature = token.rsplit(".", 1)

    # Swap the booking id inside the signed payload: the signature no longer matches.
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["s"] = theirs["id"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
    forged = f"{forged_payload.decode()}.{signature}"

    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    other_key = links.LinkSigner(["an-attacker-key-that-is-long-enough-000000"]).sign(
        purpose=links.MANAGE, subject=theirs["id"], version=1, expires_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    join_purpose = links.join_token(
        links.LinkSigner([DEV_LINK_KEY]),
        booking_id=mine["id"],
        version=1,
        participant="patient",
        ends_at=datetime(2030, 1, 1, tzinfo=UTC),
        secret="a-consultation-secret",
    )
    for bad in (forged, flipped, other_key, join_purpose, "not-a-token", "x" * 300):
        response = client.get(f"/api/v1/manage/{bad}")
        assert response.status_code == 404, bad
        assert response.json["type"].endswith("/link-invalid")
        assert client.post(f"/api/v1/manage/{bad}/cancel", json={}).status_code == 404
    assert client.get(f"/api/v1/bookings/{theirs['id']}", headers=STAFF).json["status"] == "confirmed"


def test_link_expires_a_week_after_the_visit(app: Flask, client: FlaskClient, clock: Any) -> None:
    setup = make_setup(app)
    booking = _book(client, setup)
    clock.move_to(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    assert client.get(f"/api/v1/manage/{_token(booking)}").status_code == 200
    clock.move_to(datetime(2026, 3, 10, 16, 0, tzinfo=UTC))
    expired = client.get(f"/api/v1/manage/{_token(booking)}")
    assert expired.status_code == 410
    assert expired.json["type"].endswith("/link-expired")


def test_reschedule_by_link_supersedes_the_old_link(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_setup(app)
    booking = _book(client, setup)
    old = _token(booking)
    slots = client.get(
        f"/api/v1/manage/{old}/slots",
        query_string={"start": "2026-03-03T14:00:00Z", "end": "2026-03-03T16:00:00Z"},
    )
    assert slots.status_code == 200
    assert slots.json["time_zone"] == "Europe/London"
    # Its own time counts as free when moving within it.
    assert "2026-03-03T15:15:00+00:00" in [s["start"] for s in slots.json["slots"]]

    moved = client.post(f"/api/v1/manage/{old}/reschedule", json={"start": "2026-03-03T15:15:00+00:00"})
    assert moved.status_code == 200, moved.json
    assert moved.json["version"] == 2
    new = moved.json["manage_token"]

    outdated = client.get(f"/api/v1/manage/{old}")
    assert outdated.status_code == 409
    assert outdated.json["type"].endswith("/link-outdated")
    assert client.post(f"/api/v1/manage/{old}/cancel", json={}).status_code == 409

    cancelled = client.post(f"/api/v1/manage/{new}/cancel", json={})
    assert cancelled.status_code == 200
    assert cancelled.json["status"] == "cancelled"
    staff_view = client.get(f"/api/v1/bookings/{booking['id']}", headers=STAFF).json
    assert staff_view["cancelled_by"] == "patient"


def test_patient_cannot_change_a_visit_that_has_started(app: Flask, client: FlaskClient, clock: Any) -> None:
    setup = make_setup(app)
    booking = _book(client, setup)
    clock.move_to(datetime(2026, 3, 3, 15, 10, tzinfo=UTC))
    token = _token(booking)
    started = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": "2026-03-04T15:00:00+00:00"})
    assert started.status_code == 409
    clock.shift(timedelta(hours=1))
    past = client.post(f"/api/v1/manage/{token}/cancel", json={})
    assert past.status_code == 409
    assert client.get(f"/api/v1/bookings/{booking['id']}", headers=STAFF).json["version"] == 1


def test_rotated_keys_keep_old_links_working(
    app: Flask, client: FlaskClient, booking_config: Any, clock: object
) -> None:
    setup = make_setup(app)
    booking = _book(client, setup)
    new_key = "a-new-link-signing-key-after-rotation-0001"
    rotated = create_app(dataclasses.replace(booking_config, link_signing_keys=(DEV_LINK_KEY, new_key)))
    try:
        rotated_client = rotated.test_client()
        assert rotated_client.get(f"/api/v1/manage/{_token(booking)}").status_code == 200
        fresh = rotated_client.get(f"/api/v1/bookings/{booking['id']}", headers=STAFF).json
        # The rotated app signs with the new key, which the old app does not know yet.
        assert rotated_client.get(f"/api/v1/manage/{_token(fresh)}").status_code == 200
        assert client.get(f"/api/v1/manage/{_token(fresh)}").status_code == 404
    finally:
        rotated.extensions["db"].dispose()
