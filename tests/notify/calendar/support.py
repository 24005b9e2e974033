"""Reading invites back: from the console outbox or an SMTP server, parsed by two independent parsers."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import vobject
from flask import Flask
from icalendar import Calendar, Event
from sqlalchemy import select

from services.notify.models import INVITE_STEPS, Message
from tests.notify.conftest import messages, outbox

PROVIDER_EMAIL = "maya@example.com"
PATIENT_EMAIL = "alex@example.com"


@dataclass
class Invite:
    """One calendar as it arrived, parsed twice."""

    raw: bytes
    method: str  # the MIME part's method parameter
    calendar: Calendar  # icalendar
    other: Any  # vobject's reading of the same bytes

    @property
    def event(self) -> Event:
        (event,) = self.calendar.events
        return event

    @property
    def sequence(self) -> int:
        return int(self.event["SEQUENCE"])

    @property
    def uid(self) -> str:
        return str(self.event["UID"])


def parse(raw: bytes, method: str = "") -> Invite:
    """Parse calendar bytes with icalendar and vobject, and check both read the same event."""
    calendar = Calendar.from_ical(raw)
    other = vobject.readOne(raw.decode("utf-8"))
    (event,) = calendar.events
    vevent = other.vevent
    assert vevent.uid.value == str(event["UID"])
    assert int(vevent.sequence.value) == int(event["SEQUENCE"])
    # vobject turns the local time into an instant with the VTIMEZONE we sent, icalendar with zoneinfo.
    assert vevent.dtstart.value == event.start
    assert vevent.dtend.value == event.end
    assert vevent.summary.value == str(event["SUMMARY"])
    if "LOCATION" in event:
        assert vevent.location.value == str(event["LOCATION"])
    if "DESCRIPTION" in event:
        assert vevent.description.value == str(event["DESCRIPTION"])
    if "METHOD" in calendar:
        assert other.method.value == str(calendar["METHOD"])
    return Invite(raw=raw, method=method, calendar=calendar, other=other)


def calendar_part(message: EmailMessage) -> Invite:
    """The text/calendar alternative of an invite email, checked against its invite.ics attachment."""
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar" and not p.is_attachment()]
    (inline,) = parts
    text = inline.get_payload(decode=True)
    (attached,) = [p for p in message.iter_attachments() if p.get_filename() == "invite.ics"]
    raw = attached.get_payload(decode=True)  # base64: the bytes exactly as built
    assert isinstance(raw, bytes)
    assert isinstance(text, bytes)
    # The same calendar twice (a text part's line breaks are CRLF on the wire, whatever a reader makes of them).
    assert text.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    invite = parse(raw, method=inline.get_param("method"))
    assert invite.method == str(invite.calendar["METHOD"])  # the MIME parameter and the METHOD line agree
    return invite


def patient_calendar(message: EmailMessage) -> Invite:
    """The patient's appointment.ics attached to one of their emails."""
    (part,) = [p for p in message.iter_attachments() if p.get_filename() == "appointment.ics"]
    raw = part.get_payload(decode=True)
    assert isinstance(raw, bytes)
    invite = parse(raw, method=part.get_param("method"))
    assert invite.method == str(invite.calendar["METHOD"]) == "PUBLISH"
    return invite


def emails(app: Flask, to: str) -> list[EmailMessage]:
    """The emails the console sender recorded for ``to``, oldest first, as parsed MIME messages."""
    found = []
    for row in outbox(app, "email"):
        if row.recipient == to:
            assert row.raw is not None
            found.append(email.message_from_bytes(row.raw, policy=email.policy.default))
    return found  # type: ignore[return-value]


def provider_invites(app: Flask) -> list[Invite]:
    """Every invite the provider received, in the order they went."""
    return [calendar_part(m) for m in emails(app, PROVIDER_EMAIL)]


def invite_rows(app: Flask) -> list[Message]:
    """The plan rows of provider invites, oldest first."""
    return [m for m in messages(app) if m.step in INVITE_STEPS]


def invite_row(app: Flask, message_id: int) -> Message:
    """One plan row by id."""
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        return session.scalars(select(Message).where(Message.id == message_id)).one()


def physical_lines(raw: bytes) -> list[bytes]:
    """The lines of iCalendar text as sent (before unfolding)."""
    assert raw.endswith(b"\r\n")
    return raw.split(b"\r\n")[:-1]


def course_calendars(message: EmailMessage) -> list[Invite]:
    """Every session's calendar in one whole-course invite email: the inline part (the first session, also in
    invite.ics) and each other session's own ``text/calendar`` attachment, each with its method parameter."""
    calendars = [calendar_part(message)]
    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            raw = part.get_payload(decode=True)
            assert isinstance(raw, bytes)
            invite = parse(raw, method=part.get_param("method"))
            assert invite.method == str(invite.calendar["METHOD"])
            calendars.append(invite)
    assert len({c.uid for c in calendars}) == len(calendars)  # one UID per iTIP object, each once
    return calendars
