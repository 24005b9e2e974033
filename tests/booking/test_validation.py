"""Bad input on every endpoint: a problem+json answer naming the field at fault, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.booking.models import Base
from shared.db import get_db
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup

START = "2026-03-03T10:00:00-05:00"


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context(), get_db().transaction() as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def world(app: Flask, client: FlaskClient, clock: object) -> dict[str, Any]:
    setup = make_setup(app)
    other = make_setup(app, slug="other")
    booking = client.post("/api/v1/bookings", json=booking_body(setup, START), headers=STAFF).json
    return {"setup": setup, "other": other, "booking": booking}


def _cases(w: dict[str, Any]) -> list[tuple[str, str, Any, int, str]]:
    s, o, b = w["setup"], w["other"], w["booking"]
    good = booking_body(s, "2026-03-03T14:00:00-05:00", email="new@example.com")
    p = s.provider_id
    return [
        # (method, path, json body, expected status, field named)
        ("POST", "/api/v1/clinics", {"slug": "Bad Slug!", "name": "X", "time_zone": "UTC"}, 422, "slug"),
        ("POST", "/api/v1/clinics", {"slug": "ok", "name": "X", "time_zone": "Mars/Base"}, 422, "time_zone"),
        (
            "POST",
            "/api/v1/clinics",
            {"slug": "ok", "name": "X", "time_zone": "UTC", "colour": "red"},
            422,
            "colour",
        ),
        (
            "POST",
            "/api/v1/clinics",
            {"slug": f"clinic-{'consult'}", "name": "X", "time_zone": "UTC"},
            409,
            "",
        ),
        ("PATCH", f"/api/v1/clinics/{s.clinic_id}", {"time_zone": "Nowhere"}, 422, "time_zone"),
        ("PATCH", "/api/v1/clinics/999", {"name": "X"}, 404, ""),
        (
            "POST",
            "/api/v1/providers",
            {"clinic_id": s.clinic_id, "name": "A", "email": "nope", "time_zone": "UTC"},
            422,
            "email",
        ),
        (
            "POST",
            "/api/v1/providers",
            {"clinic_id": 999, "name": "A", "email": "a@b.org", "time_zone": "UTC"},
            404,
            "",
        ),
        (
            "POST",
            "/api/v1/providers",
            {
                "clinic_id": s.clinic_id,
                "name": "A",
                "email": "a@b.org",
                "time_zone": "UTC",
                "appointment_type_ids": [o.type_id],
            },
            422,
            "appointment_type_ids",
        ),
        ("PATCH", f"/api/v1/providers/{p}", {"email": "x"}, 422, "email"),
        (
            "PATCH",
            f"/api/v1/providers/{p}",
            {"appointment_type_ids": [o.type_id]},
            422,
            "appointment_type_ids",
        ),
        (
            "PUT",
            f"/api/v1/providers/{p}/availability",
            {"rules": [{"weekday": 7, "start": "09:00", "end": "10:00"}]},
            422,
            "rules.0.weekday",
        ),
        (
            "PUT",
            f"/api/v1/providers/{p}/availability",
            {"rules": [{"weekday": 1, "start": "09:03", "end": "10:00"}]},
            422,
            "rules.0.start",
        ),
        (
            "PUT",
            f"/api/v1/providers/{p}/availability",
            {"rules": [{"weekday": 1, "start": "11:00", "end": "10:00"}]},
            422,
            "rules.0.end",
        ),
        (
            "PUT",
            f"/api/v1/providers/{p}/availability",
            {
                "rules": [
                    {"weekday": 1, "start": "09:00", "end": "12:00"},
                    {"weekday": 1, "start": "11:00", "end": "13:00"},
                ]
            },
            422,
            "rules",
        ),
        (
            "PUT",
            f"/api/v1/providers/{p}/overrides/2026-03-04",
            {"closed": True, "windows": [{"start": "09:00", "end": "10:00"}]},
            422,
            "windows",
        ),
        ("PUT", f"/api/v1/providers/{p}/overrides/2026-03-04", {"closed": False}, 422, "windows"),
        ("PUT", f"/api/v1/providers/{p}/overrides/2026-02-30", {"closed": True}, 404, ""),
        ("PUT", "/api/v1/providers/999/overrides/2026-03-04", {"closed": True}, 404, ""),
        (
            "POST",
            "/api/v1/appointment-types",
            {
                "clinic_id": s.clinic_id,
                "slug": "t",
                "name": "T",
                "duration_minutes": 7,
                "mode": "video",
                "reminder_protocol": "x",
            },
            422,
            "duration_minutes",
        ),
        (
            "POST",
            "/api/v1/appointment-types",
            {
                "clinic_id": s.clinic_id,
                "slug": "t",
                "name": "T",
                "duration_minutes": 30,
                "mode": "phone",
                "reminder_protocol": "x",
            },
            422,
            "mode",
        ),
        (
            "POST",
            "/api/v1/appointment-types",
            {
                "clinic_id": s.clinic_id,
                "slug": "t",
                "name": "T",
                "duration_minutes": 30,
                "mode": "in_person",
                "reminder_protocol": "x",
            },
            422,
            "location",
        ),
        (
            "POST",
            "/api/v1/appointment-types",
            {
                "clinic_id": s.clinic_id,
                "slug": "consult",
                "name": "T",
                "duration_minutes": 30,
                "mode": "video",
                "reminder_protocol": "x",
            },
            409,
            "",
        ),
        ("PATCH", f"/api/v1/appointment-types/{s.type_id}", {"daily_limit": 0}, 422, "daily_limit"),
        ("PATCH", f"/api/v1/appointment-types/{s.type_id}", {"mode": "in_person"}, 422, "location"),
        (
            "POST",
            "/api/v1/patients",
            {"clinic_id": s.clinic_id, "name": "P", "email": "p@x.org", "time_zone": "UTC", "phone": "12"},
            422,
            "phone",
        ),
        (
            "POST",
            "/api/v1/patients",
            {
                "clinic_id": s.clinic_id,
                "name": "P",
                "email": "p@x.org",
                "time_zone": "UTC",
                "sms_consent": True,
            },
            422,
            "sms_consent",
        ),
        (
            "POST",
            "/api/v1/patients",
            {
                "clinic_id": s.clinic_id,
                "name": "P",
                "email": "p@x.org",
                "time_zone": "UTC",
                "phone": "+442071838750",
            },
            422,
            "phone",
        ),
        ("POST", "/api/v1/bookings", {**good, "start": "2026-03-03T14:00:00"}, 422, "start"),
        ("POST", "/api/v1/bookings", {k: v for k, v in good.items() if k != "start"}, 422, "start"),
        ("POST", "/api/v1/bookings", {**good, "provider_id": "1"}, 422, "provider_id"),
        (
            "POST",
            "/api/v1/bookings",
            {**good, "patient": {**good["patient"], "language": "fr"}},
            422,
            "patient.language",
        ),
        (
            "POST",
            "/api/v1/bookings",
            {**good, "patient": {**good["patient"], "language": "es-MX"}},
            422,
            "patient.language",
        ),
        ("POST", "/api/v1/bookings", {**good, "patient_id": b["patient"]["id"]}, 422, "patient"),
        ("POST", "/api/v1/bookings", {k: v for k, v in good.items() if k != "patient"}, 422, "patient"),
        (
            "POST",
            "/api/v1/bookings",
            {**good, "patient": {**good["patient"], "phone": "+1 212 555"}},
            422,
            "patient.phone",
        ),
        (
            "POST",
            "/api/v1/bookings",
            {**good, "patient": {**good["patient"], "time_zone": "EST5EDT?"}},
            422,
            "patient.time_zone",
        ),
        (
            "POST",
            "/api/v1/bookings",
            {**good, "patient": {**good["patient"], "email": "no-at"}},
            422,
            "patient.email",
        ),
        (
            "POST",
            "/api/v1/bookings",
            {**good, "patient_id": "00000000-0000-0000-0000-000000000000", "patient": None},
            404,
            "",
        ),
        ("POST", "/api/v1/bookings", {**good, "start": "2026-03-03T14:02:00-05:00"}, 409, ""),
        ("POST", f"/api/v1/bookings/{b['id']}/reschedule", {}, 422, "start"),
        (
            "POST",
            f"/api/v1/bookings/{b['id']}/reschedule",
            {"start": "2026-03-03T14:00:00-05:00", "expected_version": "1"},
            422,
            "expected_version",
        ),
        ("POST", f"/api/v1/bookings/{b['id']}/reschedule", {"start": START}, 422, "start"),
        (
            "POST",
            f"/api/v1/bookings/{b['id']}/reschedule",
            {"start": "2026-03-03T14:00:00-05:00", "expected_version": 7},
            409,
            "",
        ),
        (
            "POST",
            "/api/v1/bookings/00000000-0000-0000-0000-000000000000/reschedule",
            {"start": START},
            404,
            "",
        ),
        ("POST", f"/api/v1/bookings/{b['id']}/cancel", {"expected_version": "x"}, 422, "expected_version"),
        ("GET", "/api/v1/bookings?status=maybe", None, 422, "status"),
        ("GET", "/api/v1/bookings?limit=0", None, 422, "limit"),
        ("GET", "/api/v1/bookings?start_from=tomorrow", None, 422, "start_from"),
        ("GET", "/api/v1/providers?clinic_id=abc", None, 422, "clinic_id"),
        ("GET", "/api/v1/slots?provider_id=1", None, 422, "appointment_type_id"),
    ]


def test_every_endpoint_refuses_bad_input_and_stores_nothing(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    before = _counts(app)
    for method, path, body, status, field in _cases(world):
        response = client.open(path, method=method, json=body, headers=STAFF)
        where = f"{method} {path} {body}"
        assert response.status_code == status, (where, response.json)
        assert response.mimetype == "application/problem+json", where
        assert response.json["status"] == status
        assert response.json["title"]
        if field:
            named = {p["name"] for p in response.json["invalid_params"]}
            assert field in named, (where, named)
        assert _counts(app) == before, where


def test_unreadable_bodies_are_400(app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    before = _counts(app)
    for path in ("/api/v1/bookings", "/api/v1/clinics", f"/api/v1/bookings/{world['booking']['id']}/cancel"):
        response = client.post(path, data="{not json", content_type="application/json", headers=STAFF)
        assert response.status_code == 400, path
        assert response.mimetype == "application/problem+json"
        assert response.json["invalid_params"][0]["in"] == "json"
    bad_key = client.post(
        "/api/v1/bookings",
        json=booking_body(world["setup"], "2026-03-03T14:00:00-05:00"),
        headers={**STAFF, "Idempotency-Key": "x" * 300},
    )
    assert bad_key.status_code == 400
    assert bad_key.json["invalid_params"][0]["name"] == "Idempotency-Key"
    assert _counts(app) == before


def test_unknown_routes_and_methods_are_problems(client: FlaskClient, world: dict[str, Any]) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    wrong_method = client.delete("/api/v1/bookings", headers=STAFF)
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["Allow"]
