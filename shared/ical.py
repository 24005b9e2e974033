"""iCalendar for bookings, built with the icalendar library: one event identity per booking everywhere."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlencode, urlsplit

from icalendar import Alarm, Calendar, Component, Event, Timezone
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
    calendar = _head(method, properties)
    for event in events:
        calendar.add_component(event)
    # What add_missing_timezones() does, from the cache: building a VTIMEZONE costs milliseconds.
    for index, key in enumerate(_zones_of(calendar, events)):
        calendar.subcomponents.insert(index, vtimezone(*key))
    return calendar


def calendar_ical(
    *, method: str | None, events: Sequence[Event], properties: Iterable[tuple[str, object]] = ()
) -> bytes:
    """``new_calendar(...).to_ical()``, byte for byte, with each VTIMEZONE's text from the cache."""
    calendar = _head(method, properties)
    head = _to_ical(calendar)
    assert head.endswith(_END)
    for event in events:
        calendar.add_component(event)
    # A VTIMEZONE's text is a third of a one-event calendar's lines, and never changes.
    zones = [vtimezone_ical(*key) for key in _zones_of(calendar, events)]
    return b"".join([head[: -len(_END)], *zones, *(_to_ical(e) for e in events), _END])


@lru_cache(maxsize=256)
def vtimezone_ical(tzid: str, first_year: int, last_year: int) -> bytes:
    """The serialized VTIMEZONE of :func:`vtimezone` (calendars written piece by piece share it)."""
    return _to_ical(vtimezone(tzid, first_year, last_year))


_END = b"END:VCALENDAR\r\n"
_FOLD = 74  # characters before a fold: icalendar's limit of 75 octets, counted as it counts them


def _to_ical(component: Component) -> bytes:
    """``component.to_ical()``, byte for byte: icalendar folds a line one character at a time, which was
    most of an entry's cost; an ASCII line (nearly all) is cut here in slices at the same places."""
    return b"".join(
        (_fold_ascii(line) if line.isascii() else bytes(line.to_ical())) + b"\r\n"
        for line in component.content_lines()
        if line
    )


def _fold_ascii(line: str) -> bytes:
    """An ASCII content line folded where icalendar folds it: every 74 characters, one earlier when a fold
    would split an escape (a backslash or a caret last on the line)."""
    pieces, start = [], 0
    while len(line) - start > _FOLD:
        end = start + _FOLD
        if line[end - 1] in "\\^":
            end -= 1
        pieces.append(line[start:end])
        start = end
    pieces.append(line[start:])
    return "\r\n ".join(pieces).encode("ascii")


def _head(method: str | None, properties: Iterable[tuple[str, object]]) -> Calendar:
    """A VCALENDAR with its properties and no components yet."""
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
    return calendar


def _zones_of(calendar: Calendar, events: Sequence[Event]) -> list[tuple[str, int, int]]:
    """The (zone, first year, last year) of each VTIMEZONE ``calendar`` holding ``events`` lacks, in order."""
    moments = _moments(events)
    if not moments:
        return []
    first, last = timezone_span(moments)
    return [(tzid, first, last) for tzid in sorted(calendar.get_missing_tzids())]


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
    time_zone: str  # the zone the visit is shown in: the clinic's for an in-clinic visit, else the patient's
    visit_name: str
    video: bool
    location: str  # where an in-clinic visit happens
    clinic_name: str
    clinic_phone: str
    provider_name: str
    manage_url: str
    join_url: str | None = None  # the patient's own video link, once it exists
    reminder: timedelta | None = timedelta(hours=1)  # the alarm before the start (None: no alarm)

    @property
    def where(self) -> str:
        """The entry's location: the clinic's address, or the video link (or when it will come)."""
        if not self.video:
            return self.location
        return self.join_url or "Video call: your personal join link is sent before the visit"

    @property
    def summary(self) -> str:
        """The entry's title: the visit type and the clinic, never a health detail."""
        return f"{self.visit_name}, {self.clinic_name}"

    def description(self) -> str:
        """The entry's notes: who, when, where and the patient's links."""
        lines = [
            f"{self.visit_name} with {self.provider_name}, {self.clinic_name}.",
            f"Time: {format_local(self.start, self.time_zone)}.",
            f"Join the video call: {self.join_url}" if self.join_url else f"Where: {self.where}.",
            f"See, reschedule or cancel: {self.manage_url}",
        ]
        if self.clinic_phone:
            lines.append(f"Questions: call {self.clinic_phone}.")
        return "\n".join(lines)


def _alarm(visit: PatientVisit) -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", f"{visit.summary} starts soon")
    alarm.add("trigger", -(visit.reminder or timedelta()))
    return alarm


def patient_event(visit: PatientVisit, *, booking_public_url: str, stamp: datetime) -> Event:
    """The patient's calendar entry: SEQUENCE = version - 1, so each newer version replaces the older one."""
    event = Event.new(
        uid=event_uid(visit.booking_id, booking_public_url),
        sequence=visit.version - 1,
        stamp=stamp,
        start=local(visit.start, visit.time_zone),
        end=local(visit.end, visit.time_zone),
        summary=visit.summary,
        location=visit.where,
        description=visit.description(),
        url=visit.manage_url,
        status=STATUS.CANCELLED if visit.cancelled else STATUS.CONFIRMED,
        # Shared and delegated calendars show "busy", not the details.
        classification=CLASS.PRIVATE,
    )
    if visit.reminder and not visit.cancelled:
        event.add_component(_alarm(visit))
    return event


def _utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def add_to_calendar_links(visit: PatientVisit) -> dict[str, str]:
    """Links that open a new entry for ``visit`` in Google Calendar, Outlook.com and Office 365 on the web.

    An Android phone does not open an ``.ics`` in Google Calendar; these compose the same entry (title, time,
    place, notes with the patient's links) in the patient's own account instead.
    """
    google = {
        "action": "TEMPLATE",
        "text": visit.summary,
        "dates": f"{_utc_stamp(visit.start)}/{_utc_stamp(visit.end)}",
        "ctz": visit.time_zone,
        "details": visit.description(),
        "location": visit.where,
    }
    outlook = {
        "rru": "addevent",
        "subject": visit.summary,
        "startdt": visit.start.astimezone(UTC).isoformat(),
        "enddt": visit.end.astimezone(UTC).isoformat(),
        "body": visit.description(),
        "location": visit.where,
    }
    return {
        "google": "https://calendar.google.com/calendar/render?" + urlencode(google),
        "outlook": "https://outlook.live.com/calendar/0/action/compose?" + urlencode(outlook),
        "office365": "https://outlook.office.com/calendar/0/action/compose?" + urlencode(outlook),
    }


def patient_calendar(visit: PatientVisit, *, booking_public_url: str, stamp: datetime) -> bytes:
    """The patient's entry as an iCalendar file (METHOD:PUBLISH): the manage page's and the email's."""
    event = patient_event(visit, booking_public_url=booking_public_url, stamp=stamp)
    return calendar_ical(method=PUBLISH, events=[event])
