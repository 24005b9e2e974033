"""Builders of clinic data for booking tests, through the service layer (as the API would)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Any

from flask import Flask

from services.booking.catalog import service as catalog
from shared.db import get_db

PATIENT = {
    "name": "Jordan Example",
    "email": "jordan@example.com",
    "phone": "+14155552671",
    "time_zone": "Europe/London",
    "sms_consent": True,
}


@dataclass(frozen=True)
class Setup:
    clinic_id: int
    provider_id: int
    type_id: int
    provider_tz: str


def make_setup(
    app: Flask,
    *,
    tz: str = "America/New_York",
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4),
    hours: tuple[time, time] = (time(9), time(17)),
    slug: str = "consult",
    **type_fields: Any,
) -> Setup:
    """A clinic with one provider offering one appointment type, open ``hours`` on ``weekdays``."""
    fields: dict[str, Any] = {
        "slug": slug,
        "name": "Consultation",
        "duration_minutes": 45,
        "mode": "video",
        "slot_interval_minutes": 15,
        "reminder_protocol": "video-consultation",
        "horizon_days": 400,
    }
    fields.update(type_fields)
    with app.app_context(), get_db().transaction() as session:
        clinic = catalog.create_clinic(session=session, slug=f"clinic-{slug}", name="Clinic", time_zone=tz)
        appointment_type = catalog.create_appointment_type(
            session=session, clinic_id=clinic.id, fields=fields
        )
        provider = catalog.create_provider(
            session=session,
            clinic_id=clinic.id,
            name="Dr. Test",
            email="dr.test@example.com",
            time_zone=tz,
            appointment_type_ids=[appointment_type.id],
        )
        catalog.set_weekly_availability(
            session=session, provider_id=provider.id, rules=[(d, hours[0], hours[1]) for d in weekdays]
        )
        return Setup(clinic.id, provider.id, appointment_type.id, tz)


def booking_body(setup: Setup, start: str, **patient: Any) -> dict[str, Any]:
    """A create-booking request for ``start`` with a new patient."""
    return {
        "provider_id": setup.provider_id,
        "appointment_type_id": setup.type_id,
        "start": start,
        "patient": {**PATIENT, **patient},
    }


@dataclass(frozen=True)
class ChairSetup:
    clinic_id: int
    provider_ids: list[int]
    type_id: int
    chair_ids: list[int]
    provider_tz: str


def make_chair_setup(
    app: Flask,
    *,
    providers: int = 2,
    chairs: int = 1,
    chair_hours: tuple[time, time] = (time(8), time(18)),
    slug: str = "infusion",
    **type_fields: Any,
) -> ChairSetup:
    """A clinic whose infusions need a chair: ``providers`` providers (09:00-17:00 weekdays) and ``chairs`` chairs.

    The type: 60 minutes, 30 minutes of recovery in the chair, the provider for the first 20 minutes.
    """
    from services.booking.resources import service as resources

    fields: dict[str, Any] = {
        "duration_minutes": 60,
        "mode": "in_person",
        "location": "1 Clinic Road",
        "slot_interval_minutes": 30,
        "reminder_protocol": "infusion-session",
        "resource_kind": "infusion-chair",
        "recovery_minutes": 30,
        "provider_minutes": 20,
        **type_fields,
    }
    first = make_setup(app, slug=slug, **fields)
    with app.app_context(), get_db().transaction() as session:
        provider_ids = [first.provider_id]
        for n in range(1, providers):
            provider = catalog.create_provider(
                session=session,
                clinic_id=first.clinic_id,
                name=f"Dr. Test {n}",
                email=f"dr.test{n}@example.com",
                time_zone=first.provider_tz,
                appointment_type_ids=[first.type_id],
            )
            catalog.set_weekly_availability(
                session=session, provider_id=provider.id, rules=[(d, time(9), time(17)) for d in range(5)]
            )
            provider_ids.append(provider.id)
        chair_ids = [
            resources.create_resource(
                session=session,
                clinic_id=first.clinic_id,
                name=f"Chair {n + 1}",
                kind="infusion-chair",
                hours=[(d, *chair_hours) for d in range(5)],
            ).id
            for n in range(chairs)
        ]
    return ChairSetup(first.clinic_id, provider_ids, first.type_id, chair_ids, first.provider_tz)


def chair_body(setup: ChairSetup, start: str, provider: int = 0, **patient: Any) -> dict[str, Any]:
    """A create-booking request for an infusion at ``start`` with provider number ``provider``."""
    return {
        "provider_id": setup.provider_ids[provider],
        "appointment_type_id": setup.type_id,
        "start": start,
        "patient": {**PATIENT, **patient},
    }


def table_counts(app: Flask) -> dict[str, int]:
    """Rows in every booking table (to prove a refused request stored nothing)."""
    from sqlalchemy import func, select

    from services.booking.models import Base

    with app.app_context(), get_db().transaction() as session:
        return {
            t.name: int(session.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


def assert_refused(app: Flask, client: Any, cases: list[tuple[str, str, Any, int, str]]) -> None:
    """Each (method, path, body, status, field) is a problem+json naming ``field``, and changes nothing."""
    from tests.booking.conftest import STAFF

    before = table_counts(app)
    for method, path, body, status, field in cases:
        response = client.open(path, method=method, json=body, headers=STAFF)
        where = f"{method} {path} {body}"
        assert response.status_code == status, (where, response.json)
        assert response.mimetype == "application/problem+json", where
        if field:
            assert field in {p["name"] for p in response.json["invalid_params"]}, where
        assert table_counts(app) == before, where
