"""The patient's "add to calendar" file: one iCalendar event per booking.

The UID is derived from the booking id, so re-downloading after a reschedule updates the same entry in the
patient's calendar (SEQUENCE = version - 1 makes the newer copy win). The title names the visit type and the
clinic only: calendar entries are often shared or synced, so no intake answer or health detail goes in.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from icalendar import Calendar, Event
from icalendar.enums import STATUS

from services.booking.models import Booking
from shared.events import VIDEO
from shared.timeutil import format_local, utcnow

PRODID = "-//Telehealth Suite//Booking pages//EN"


def event_uid(booking: Booking, public_url: str) -> str:
    """The stable UID of a booking's calendar entry."""
    host = urlsplit(public_url).hostname or "booking.invalid"
    return f"booking-{booking.id}@{host}"


def booking_ics(booking: Booking, *, public_url: str, manage_url: str) -> bytes:
    """The booking as an iCalendar file (METHOD:PUBLISH) the patient can add to their own calendar."""
    kind = booking.appointment_type
    where = (
        "Video call: your personal join link is sent before the visit"
        if kind.mode == VIDEO
        else kind.location or booking.clinic.address
    )
    lines = [
        f"{kind.name} with {booking.provider.name}, {booking.clinic.name}.",
        f"Time: {format_local(booking.start_at, booking.patient.time_zone)}.",
        f"Where: {where}.",
        f"See, reschedule or cancel: {manage_url}",
    ]
    if booking.clinic.phone:
        lines.append(f"Questions: call {booking.clinic.phone}.")
    event = Event.new(
        uid=event_uid(booking, public_url),
        sequence=booking.version - 1,
        stamp=utcnow(),
        start=booking.start_at,
        end=booking.end_at,
        summary=f"{kind.name}, {booking.clinic.name}",
        location=where,
        description="\n".join(lines),
        url=manage_url,
        status=STATUS.CANCELLED if booking.status == "cancelled" else STATUS.CONFIRMED,
    )
    calendar = Calendar.new(prodid=PRODID, method="PUBLISH", subcomponents=[event])
    return bytes(calendar.to_ical())
