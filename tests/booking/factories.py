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
