"""The demo clinic that ``make run`` starts with: a telehealth ketamine-therapy practice.

Seeding is idempotent: running it again finds what is there and adds only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.booking import search, service
from services.booking.catalog import service as catalog
from services.booking.courses import service as courses
from services.booking.models import AppointmentType, Booking, Clinic, CourseTemplate, Provider, Resource
from services.booking.resources import service as resources
from shared.timeutil import utcnow

CLINIC = {
    "slug": "demo-clinic",
    "name": "Demo Ketamine Clinic",
    "time_zone": "America/New_York",
    "address": "200 Demo Avenue, Suite 3, Brooklyn, NY 11201",
    "phone": "+17185550100",
}

TYPES: list[dict[str, Any]] = [
    {
        "slug": "video-consultation",
        "name": "Video consultation",
        "description": "A first conversation with a provider by video, to see whether treatment suits you.",
        "duration_minutes": 45,
        "mode": "video",
        "buffer_after_minutes": 15,
        "slot_interval_minutes": 15,
        "min_notice_minutes": 30,
        "horizon_days": 60,
        "reminder_protocol": "video-consultation",
        "change_cutoff_hours": 12,
        "asks_intake": True,
    },
    {
        "slug": "infusion-session",
        "name": "In-clinic infusion session",
        "description": "A supervised infusion of about 40-60 minutes, then time to recover in the clinic.",
        "duration_minutes": 60,
        "mode": "in_person",
        "buffer_before_minutes": 15,
        "buffer_after_minutes": 10,
        "slot_interval_minutes": 30,
        "min_notice_minutes": 24 * 60,
        "horizon_days": 90,
        "daily_limit": 4,
        "location": CLINIC["address"],
        "reminder_protocol": "infusion-session",
        "change_cutoff_hours": 48,
        # A chair for the infusion and 45 minutes of recovery; the provider for the start and first
        # observations only, so they can start a patient in another chair meanwhile.
        "resource_kind": "infusion-chair",
        "recovery_minutes": 45,
        "provider_minutes": 20,
        # No driving for the rest of the day: someone takes the patient home after recovery.
        "requires_escort": True,
    },
    {
        "slug": "follow-up",
        "name": "Follow-up by video",
        "description": "A short check-in on changes in mood and pain since your last session.",
        "duration_minutes": 20,
        "mode": "video",
        "buffer_after_minutes": 10,
        "slot_interval_minutes": 15,
        "min_notice_minutes": 60,
        "horizon_days": 60,
        "reminder_protocol": "follow-up",
        "change_cutoff_hours": 4,
    },
]

PROVIDERS: list[dict[str, Any]] = [
    {
        "name": "Dr. Maya Chen",
        "email": "maya.chen@demo-clinic.example",
        "time_zone": "America/New_York",
        "types": ["video-consultation", "infusion-session", "follow-up"],
    },
    {
        "name": "Dr. Samuel Ortiz",
        "email": "samuel.ortiz@demo-clinic.example",
        "time_zone": "America/Los_Angeles",
        "types": ["video-consultation", "follow-up"],
    },
]

CHAIRS = [f"Infusion chair {n}" for n in (1, 2, 3)]

DEMO_PATIENT = {
    "name": "Alex Demo",
    "email": "alex.demo@example.com",
    "phone": "+14155552671",
    "time_zone": "Europe/London",
    "sms_consent": True,
}


@dataclass(frozen=True)
class Demo:
    """What the seed left in the database."""

    clinic: Clinic
    providers: list[Provider]
    types: dict[str, AppointmentType]
    booking: Booking | None


def seed_demo(*, session: Session, with_booking: bool = True) -> Demo:
    """Create the demo clinic, its types, providers and hours, and one upcoming demo booking."""
    clinic = session.scalar(select(Clinic).where(Clinic.slug == CLINIC["slug"]))
    if clinic is None:
        clinic = catalog.create_clinic(session=session, **CLINIC)
    types: dict[str, AppointmentType] = {}
    for spec in TYPES:
        found = session.scalar(
            select(AppointmentType).where(
                AppointmentType.clinic_id == clinic.id, AppointmentType.slug == spec["slug"]
            )
        )
        types[spec["slug"]] = found or catalog.create_appointment_type(
            session=session, clinic_id=clinic.id, fields=dict(spec)
        )
    providers = []
    for spec in PROVIDERS:
        provider = session.scalar(
            select(Provider).where(Provider.clinic_id == clinic.id, Provider.email == spec["email"])
        )
        if provider is None:
            provider = catalog.create_provider(
                session=session,
                clinic_id=clinic.id,
                name=spec["name"],
                email=spec["email"],
                time_zone=spec["time_zone"],
                appointment_type_ids=[types[slug].id for slug in spec["types"]],
            )
            catalog.set_weekly_availability(
                session=session,
                provider_id=provider.id,
                rules=[(weekday, time(9), time(17)) for weekday in range(5)],
            )
        providers.append(provider)
    _seed_chairs(session, clinic)
    _seed_course(session, clinic, types["infusion-session"])
    booking = _demo_booking(session, providers[0], types["video-consultation"]) if with_booking else None
    return Demo(clinic=clinic, providers=providers, types=types, booking=booking)


def _seed_chairs(session: Session, clinic: Clinic) -> None:
    have = set(session.scalars(select(Resource.name).where(Resource.clinic_id == clinic.id)))
    for name in CHAIRS:
        if name not in have:
            resources.create_resource(
                session=session,
                clinic_id=clinic.id,
                name=name,
                kind="infusion-chair",
                hours=[(weekday, time(8, 30), time(18)) for weekday in range(5)],
            )


def _seed_course(session: Session, clinic: Clinic, infusion: AppointmentType) -> None:
    """An induction course: six infusions, at most three a week a day apart within three weeks, boosters."""
    if session.scalar(select(CourseTemplate.id).where(CourseTemplate.clinic_id == clinic.id)) is None:
        courses.create_template(
            session=session,
            clinic_id=clinic.id,
            fields={
                "slug": "induction",
                "name": "Induction course",
                "session_type_id": infusion.id,
                "sessions": 6,
                "min_hours_between": 24,
                "max_per_week": 3,
                "within_days": 21,
                "same_provider": "preferred",
                "booster_type_id": infusion.id,
                "booster_interval_days": 28,
            },
        )


def _demo_booking(session: Session, provider: Provider, appointment_type: AppointmentType) -> Booking | None:
    now = utcnow()
    upcoming = session.scalar(
        select(Booking)
        .where(
            Booking.idempotency_key.like("demo-seed-%"), Booking.status == "confirmed", Booking.start_at > now
        )
        .order_by(Booking.start_at)
        .limit(1)
    )
    if upcoming is not None:
        return upcoming
    starts = search.find_slots(
        session=session,
        provider_id=provider.id,
        appointment_type_id=appointment_type.id,
        start=now + timedelta(days=1),
        end=now + timedelta(days=15),
    )
    if not starts:
        return None
    booking, _ = service.book_appointment(
        session=session,
        provider_id=provider.id,
        appointment_type_id=appointment_type.id,
        start=starts[0],
        patient=dict(DEMO_PATIENT),
        idempotency_key=f"demo-seed-{starts[0]:%Y%m%d%H%M}",
    )
    return booking
