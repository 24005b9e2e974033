"""The patient's "add to calendar" file: one iCalendar event per booking (built by ``shared.ical``)."""

from __future__ import annotations

from services.booking.models import Booking
from shared import ical
from shared.events import VIDEO
from shared.timeutil import utcnow


def patient_visit(
    booking: Booking, *, manage_url: str, join_url: str | None, time_zone: str
) -> ical.PatientVisit:
    """What the patient's calendar entry says about ``booking``, its times in ``time_zone``."""
    kind = booking.appointment_type
    return ical.PatientVisit(
        booking_id=str(booking.id),
        version=booking.version,
        cancelled=booking.status == "cancelled",
        start=booking.start_at,
        end=booking.end_at,
        time_zone=time_zone,
        visit_name=kind.name,
        video=kind.mode == VIDEO,
        location=kind.location or booking.clinic.address,
        clinic_name=booking.clinic.name,
        clinic_phone=booking.clinic.phone,
        provider_name=booking.provider.name,
        manage_url=manage_url,
        join_url=join_url,
    )


def booking_ics(visit: ical.PatientVisit, *, public_url: str) -> bytes:
    """The booking as an iCalendar file (METHOD:PUBLISH) the patient can add to their own calendar."""
    return ical.patient_calendar(visit, booking_public_url=public_url, stamp=utcnow())
