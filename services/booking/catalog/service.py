"""Business operations on what a clinic offers: clinics, providers, types, availability, patients."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, time
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.booking.languages import DEFAULT_LANGUAGE
from services.booking.models import (
    AppointmentType,
    AvailabilityOverride,
    AvailabilityRule,
    Clinic,
    Patient,
    Provider,
)
from services.booking.search import bump_schedule
from shared.db import insert_now, is_unique_violation
from shared.problems import Conflict, NotFound, field_error


def get_clinic(*, session: Session, clinic_id: int) -> Clinic:
    """The clinic ``clinic_id`` or 404."""
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"No clinic {clinic_id}.")
    return clinic


def get_clinic_by_slug(*, session: Session, slug: str) -> Clinic:
    """The clinic with ``slug`` or 404."""
    clinic = session.scalar(select(Clinic).where(Clinic.slug == slug))
    if clinic is None:
        raise NotFound(f"No clinic {slug!r}.")
    return clinic


def list_clinics(*, session: Session) -> Sequence[Clinic]:
    """Every clinic, by id."""
    return session.scalars(select(Clinic).order_by(Clinic.id)).all()


def create_clinic(
    *, session: Session, slug: str, name: str, time_zone: str, address: str = "", phone: str = ""
) -> Clinic:
    """Create a clinic; 409 if the slug is taken."""
    clinic = Clinic(slug=slug, name=name, time_zone=time_zone, address=address, phone=phone)
    _add_unique(session, clinic, f"A clinic with slug {slug!r} exists.")
    return clinic


def update_clinic(*, session: Session, clinic_id: int, changes: dict[str, Any]) -> Clinic:
    """Change a clinic's name, zone, address or phone."""
    clinic = get_clinic(session=session, clinic_id=clinic_id)
    for key, value in changes.items():
        setattr(clinic, key, value)
    session.flush()
    return clinic


def _types_of_clinic(session: Session, clinic_id: int, type_ids: Sequence[int]) -> list[AppointmentType]:
    if not type_ids:
        return []
    found = session.scalars(
        select(AppointmentType).where(
            AppointmentType.id.in_(type_ids), AppointmentType.clinic_id == clinic_id
        )
    ).all()
    missing = sorted(set(type_ids) - {t.id for t in found})
    if missing:
        raise field_error("appointment_type_ids", f"no appointment type {missing} in this clinic")
    return list(found)


def create_provider(
    *,
    session: Session,
    clinic_id: int,
    name: str,
    email: str,
    time_zone: str,
    appointment_type_ids: Sequence[int] = (),
) -> Provider:
    """Create a provider of ``clinic_id`` offering ``appointment_type_ids``."""
    get_clinic(session=session, clinic_id=clinic_id)
    provider = Provider(clinic_id=clinic_id, name=name, email=email, time_zone=time_zone)
    provider.appointment_types = _types_of_clinic(session, clinic_id, appointment_type_ids)
    session.add(provider)
    session.flush()
    return provider


def get_provider(*, session: Session, provider_id: int) -> Provider:
    """The provider ``provider_id`` or 404."""
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound(f"No provider {provider_id}.")
    return provider


def list_providers(*, session: Session, clinic_id: int | None = None) -> Sequence[Provider]:
    """Providers, optionally of one clinic, by id."""
    query = select(Provider).order_by(Provider.id)
    if clinic_id is not None:
        query = query.where(Provider.clinic_id == clinic_id)
    return session.scalars(query).all()


def update_provider(*, session: Session, provider_id: int, changes: dict[str, Any]) -> Provider:
    """Change a provider's details or offered appointment types."""
    provider = get_provider(session=session, provider_id=provider_id)
    type_ids = changes.pop("appointment_type_ids", None)
    for key, value in changes.items():
        setattr(provider, key, value)
    if type_ids is not None:
        provider.appointment_types = _types_of_clinic(session, provider.clinic_id, type_ids)
    session.flush()
    bump_schedule(session, provider.id, hours="time_zone" in changes)
    session.refresh(provider)
    return provider


def create_appointment_type(*, session: Session, clinic_id: int, fields: dict[str, Any]) -> AppointmentType:
    """Create an appointment type; 409 if its slug is taken in the clinic."""
    get_clinic(session=session, clinic_id=clinic_id)
    appointment_type = AppointmentType(clinic_id=clinic_id, **fields)
    _add_unique(session, appointment_type, f"Appointment type {fields['slug']!r} exists in this clinic.")
    return appointment_type


def get_appointment_type(*, session: Session, type_id: int) -> AppointmentType:
    """The appointment type ``type_id`` or 404."""
    appointment_type = session.get(AppointmentType, type_id)
    if appointment_type is None:
        raise NotFound(f"No appointment type {type_id}.")
    return appointment_type


def list_appointment_types(*, session: Session, clinic_id: int | None = None) -> Sequence[AppointmentType]:
    """Appointment types, optionally of one clinic, by id."""
    query = select(AppointmentType).order_by(AppointmentType.id)
    if clinic_id is not None:
        query = query.where(AppointmentType.clinic_id == clinic_id)
    return session.scalars(query).all()


def update_appointment_type(*, session: Session, type_id: int, changes: dict[str, Any]) -> AppointmentType:
    """Change an appointment type. Existing bookings keep the times and buffers they were booked with."""
    appointment_type = get_appointment_type(session=session, type_id=type_id)
    for key, value in changes.items():
        setattr(appointment_type, key, value)
    if appointment_type.mode == "in_person" and not appointment_type.location:
        raise field_error("location", "an in-person appointment type needs a location")
    if (appointment_type.provider_minutes or 0) > appointment_type.duration_minutes:
        raise field_error("provider_minutes", "cannot be longer than duration_minutes")
    session.flush()
    bump_schedule(session, [p.id for p in appointment_type.providers])
    return appointment_type


def set_weekly_availability(
    *, session: Session, provider_id: int, rules: Sequence[tuple[int, time, time]]
) -> list[AvailabilityRule]:
    """Replace a provider's weekly windows with ``rules`` (weekday, start, end) in the provider's zone."""
    get_provider(session=session, provider_id=provider_id)
    bump_schedule(session, provider_id, hours=True)
    session.execute(delete(AvailabilityRule).where(AvailabilityRule.provider_id == provider_id))
    rows = [
        AvailabilityRule(provider_id=provider_id, weekday=w, start_time=s, end_time=e) for w, s, e in rules
    ]
    session.add_all(rows)
    session.flush()
    return rows


def weekly_availability(*, session: Session, provider_id: int) -> Sequence[AvailabilityRule]:
    """A provider's weekly windows, by weekday and start."""
    get_provider(session=session, provider_id=provider_id)
    return session.scalars(
        select(AvailabilityRule)
        .where(AvailabilityRule.provider_id == provider_id)
        .order_by(AvailabilityRule.weekday, AvailabilityRule.start_time)
    ).all()


def set_override(
    *, session: Session, provider_id: int, day: date, closed: bool, windows: Sequence[tuple[time, time]]
) -> list[AvailabilityOverride]:
    """Replace the hours of one date: closed, or open only in ``windows``. Existing bookings stay."""
    get_provider(session=session, provider_id=provider_id)
    clear_override(session=session, provider_id=provider_id, day=day)
    if closed:
        rows = [AvailabilityOverride(provider_id=provider_id, day=day, closed=True)]
    else:
        rows = [
            AvailabilityOverride(provider_id=provider_id, day=day, closed=False, start_time=s, end_time=e)
            for s, e in windows
        ]
    session.add_all(rows)
    session.flush()
    return rows


def clear_override(*, session: Session, provider_id: int, day: date) -> int:
    """Drop the override of one date (the weekly rules apply again); return rows removed."""
    bump_schedule(session, provider_id, hours=True)
    result = session.execute(
        delete(AvailabilityOverride).where(
            AvailabilityOverride.provider_id == provider_id, AvailabilityOverride.day == day
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def list_overrides(
    *, session: Session, provider_id: int, first_day: date | None = None, last_day: date | None = None
) -> Sequence[AvailabilityOverride]:
    """A provider's dated overrides, optionally within a range."""
    get_provider(session=session, provider_id=provider_id)
    query = select(AvailabilityOverride).where(AvailabilityOverride.provider_id == provider_id)
    if first_day is not None:
        query = query.where(AvailabilityOverride.day >= first_day)
    if last_day is not None:
        query = query.where(AvailabilityOverride.day <= last_day)
    return session.scalars(query.order_by(AvailabilityOverride.day, AvailabilityOverride.start_time)).all()


def create_patient(
    *,
    session: Session,
    clinic_id: int,
    name: str,
    email: str,
    time_zone: str,
    phone: str | None = None,
    sms_consent: bool = False,
    language: str | None = None,
) -> Patient:
    """Register a patient of ``clinic_id``. SMS consent without a mobile number is refused."""
    get_clinic(session=session, clinic_id=clinic_id)
    details = {
        "name": name,
        "email": email,
        "time_zone": time_zone,
        "phone": phone,
        "sms_consent": sms_consent,
        "language": language,
    }
    _check_consent(details, "sms_consent")
    return _new_patient(session, clinic_id, details)


def _check_consent(details: dict[str, Any], field: str) -> None:
    if details.get("sms_consent") and not details.get("phone"):
        raise field_error(field, "SMS consent needs a mobile number")


def _new_patient(session: Session, clinic_id: int, details: dict[str, Any]) -> Patient:
    """A new patient, written at once."""
    patient = Patient(
        id=uuid.uuid4(),
        clinic_id=clinic_id,
        name=details["name"],
        email=details["email"],
        email_key=details["email"].lower(),
        time_zone=details["time_zone"],
        phone=details.get("phone"),
        sms_consent=bool(details.get("sms_consent", False)),
        language=details.get("language") or DEFAULT_LANGUAGE,
    )
    insert_now(session, patient)
    return patient


def same_patient(clinic_id: Any, *, no_phone: bool) -> ColumnElement[bool]:
    """Whether a patients row is the clinic's patient with the email and phone of patient_key()."""
    return and_(
        Patient.clinic_id == clinic_id,
        Patient.email_key == bindparam("email_key"),
        Patient.phone.is_(None) if no_phone else Patient.phone == bindparam("phone"),
    )


def patient_key(details: dict[str, Any]) -> dict[str, Any]:
    """The parameters of same_patient() for a patient's details."""
    return {"email_key": details["email"].lower(), "phone": details.get("phone")}


def find_or_create_patient(
    *, session: Session, clinic_id: int, details: dict[str, Any], found: Patient | None
) -> Patient:
    """``found`` with its details refreshed, or a new patient of the clinic.

    ``found`` is the clinic's oldest patient matching same_patient(), which the caller looked up (a booking
    does it in the query that loads the provider, saving a round trip).
    """
    _check_consent(details, "patient.sms_consent")
    if found is None:
        return _new_patient(session, clinic_id, details)
    found.name = details["name"]
    found.time_zone = details["time_zone"]
    found.sms_consent = bool(details.get("sms_consent", found.sms_consent))
    # A booking that does not say (a staff booking, say) keeps the language the patient chose before.
    found.language = details.get("language") or found.language
    return found


def get_patient(*, session: Session, patient_id: uuid.UUID) -> Patient:
    """The patient ``patient_id`` or 404."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"No patient {patient_id}.")
    return patient


def _add_unique(session: Session, row: object, message: str) -> None:
    nested = session.begin_nested()
    session.add(row)
    try:
        nested.commit()
    except IntegrityError as exc:
        nested.rollback()
        if is_unique_violation(exc):
            raise Conflict(message) from exc
        raise
