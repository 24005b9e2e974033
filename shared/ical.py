"""iCalendar for bookings, built with the icalendar library: one event identity per booking everywhere."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from urllib.parse import urlsplit

from icalendar import Calendar, Event, Timezone
from icalendar.enums import CLASS, STATUS

from shared.timeutil import format_local, to_zone, zone

PRODID = "-//Telehealth Suite//Appointments//EN"
PUBLISH = "PUBLISH"
REQUEST = "REQUEST"
CANCEL = "CANCEL"
METHODS = (PUBLISH, REQUEST, CANCEL)
CONTENT_TYPE = "text/calendar"


def event_uid(booking_id: uuid.UUID | str, booking_public_url: str) -> str:
    """The UID of a booking's calendar entry: the same for every version, every calendar and every service."""
    host = urlsplit(booking_public_url).hostname or "booking.invalid"
    return f"booking-{booking_id}@{host}"


def local(moment: datetime, tz: str) -> datetime:
    """``moment`` in zone ``tz``, so the event is written with that zone's TZID."""
    return to_zone(moment, tz)


@lru_cache(maxsize=256)
def vtimezone(tzid: str, first_year: int, last_year: int) -> Timezone:
    """The VTIMEZONE of IANA zone ``tzid`` from 1 January ``first_year`` to 1 January ``last_year``."""
    zone(tzid)  # refuses unknown names before icalendar guesses
    return Timezone.from_tzid(tzid, first_date=date(first_year, 1, 1), last_date=date(last_year, 1, 1))


def timezone_span(moments: Iterable[datetime]) -> tuple[int, int]:
    """The years a VTIMEZONE must cover for ``moments``: their first year up to two years after the last."""
    years = [m.year for m in moments]
    if not years:
        raise ValueError("no times to cover")
    return min(years), max(years) + 2


def _moments(events: Sequence[Event]) -> list[datetime]:
    """The start and end times of ``events`` that are date-times (not whole days)."""
    props = (event.get(name) for event in events for name in ("DTSTART", "DTEND"))
    return [prop.dt for prop in props if prop is not None and isinstance(prop.dt, datetime)]


def new_calendar(
    *, method: str | None, events: Sequence[Event], properties: Iterable[tuple[str, object]] = ()
) -> Calendar:
    """A VCALENDAR holding ``events`` and the VTIMEZONEs they use; ``method`` is the iTIP method, if any."""
    if method is not None and method not in METHODS:
        raise ValueError(f"unknown iTIP method {method!r}")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method is not None:
        calendar.add("method", method)
    for name, value in properties:
        calendar.add(name, value)
    for event in events:
        calendar.add_component(event)
    moments = _moments(events)
    if moments:
        first, last = timezone_span(moments)
        calendar.add_missing_timezones(first_date=date(first, 1, 1), last_date=date(last, 1, 1))
    return calendar


def method_of(data: bytes) -> str | None:
    """The METHOD line of serialized calendar ``data`` (None when it has none)."""
    for line in data.splitlines():
        if line.startswith(b"METHOD:"):
            return line.removeprefix(b"METHOD:").strip().decode("ascii").upper()
        if line.startswith(b"BEGIN:V") and line != b"BEGIN:VCALENDAR":
            break  # calendar properties come before the first component
    return None


def content_type(method: str | None) -> str:
    """The MIME type of a calendar with ``method`` (the parameter must agree with the METHOD line)."""
    return f"{CONTENT_TYPE}; charset=utf-8" + (f"; method={method}" if method else "")


@dataclass(frozen=True)
class PatientVisit:
    """What the patient's own calendar entry says about one version of a booking."""

    booking_id: str
    version: int
    cancelled: bool
    start: datetime
    end: datetime
    time_zone: str  # the patient's
    visit_name: str
    video: bool
    location: str  # where an in-clinic visit happens
    clinic_name: str
    clinic_phone: str
    provider_name: str
    manage_url: str


def patient_event(visit: PatientVisit, *, booking_public_url: str, stamp: datetime) -> Event:
    """The patient's calendar entry: SEQUENCE = version - 1, so each newer version replaces the older one."""
    where = "Video call: your personal join link is sent before the visit" if visit.video else visit.location
    lines = [
        f"{visit.visit_name} with {visit.provider_name}, {visit.clinic_name}.",
        f"Time: {format_local(visit.start, visit.time_zone)}.",
        f"Where: {where}.",
        f"See, reschedule or cancel: {visit.manage_url}",
    ]
    if visit.clinic_phone:
        lines.append(f"Questions: call {visit.clinic_phone}.")
    return Event.new(
        uid=event_uid(visit.booking_id, booking_public_url),
        sequence=visit.version - 1,
        stamp=stamp,
        start=local(visit.start, visit.time_zone),
        end=local(visit.end, visit.time_zone),
        summary=f"{visit.visit_name}, {visit.clinic_name}",
        location=where,
        description="\n".join(lines),
        url=visit.manage_url,
        status=STATUS.CANCELLED if visit.cancelled else STATUS.CONFIRMED,
        # Shared and delegated calendars show "busy", not the details.
        classification=CLASS.PRIVATE,
    )


def patient_calendar(visit: PatientVisit, *, booking_public_url: str, stamp: datetime) -> bytes:
    """The patient's entry as an iCalendar file (METHOD:PUBLISH): the manage page's and the email's."""
    event = patient_event(visit, booking_public_url=booking_public_url, stamp=stamp)
    return bytes(new_calendar(method=PUBLISH, events=[event]).to_ical())
