"""From a real booking to the provider's and the patient's calendars: booking API, outbox relay, Redis, a notify
worker, SMTP (aiosmtpd). The MIME structure is checked on the messages the SMTP server caught, and the
patient's email attachment is the manage page's own "add to calendar" file."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
import time_machine
from flask import Flask
from redis import Redis

from services.notify.senders.smtp_email import SmtpEmailSender
from tests.booking.factories import booking_body, make_setup
from tests.notify.calendar.support import Invite, calendar_part, parse, patient_calendar
from tests.notify.conftest import MONDAY_NOON, STAFF, Upstream, deliver, use_senders, work
from tests.notify.doubles import mail_server
from tests.notify.factories import Booking

MANAGE = re.compile(r"https://booking\.example\.test(/manage/\S+)")


def _structure(message: EmailMessage) -> list[tuple[int, str, str | None]]:
    """(depth, content type, filename) of every MIME part, in order."""
    out: list[tuple[int, str, str | None]] = []

    def walk(part: EmailMessage, depth: int) -> None:
        out.append((depth, part.get_content_type(), part.get_filename()))
        if part.is_multipart():
            for child in part.iter_parts():
                walk(child, depth + 1)  # type: ignore[arg-type]

    walk(message, 0)
    return out


def _without_stamp(raw: bytes) -> list[bytes]:
    return [line for line in raw.split(b"\r\n") if not line.startswith(b"DTSTAMP")]


def test_invites_over_smtp_have_the_mime_layout_calendar_clients_expect(
    make_app: Callable[..., Flask], clock: time_machine.Coordinates, tmp_path: Path
) -> None:
    notify = make_app(provider_invites=True)
    with mail_server(tmp_path) as mail:
        smtp = SmtpEmailSender(host=mail.host, port=mail.port, security="none", timeout=5)
        use_senders(notify, email=smtp)
        booking = Booking(start=datetime(2026, 3, 9, 14, tzinfo=UTC), patient_name="Renée Dupont, fils")
        deliver(notify, booking.confirmed(at=MONDAY_NOON))
        work(notify)
        deliver(notify, booking.cancel(at=MONDAY_NOON))
        work(notify)
        smtp.close()
    to_provider = [m for m in mail.handler.messages if m["To"] == "maya@example.com"]
    request, cancel = to_provider
    for message, method in ((request, "REQUEST"), (cancel, "CANCEL")):
        assert _structure(message) == [
            (0, "multipart/mixed", None),
            (1, "multipart/alternative", None),
            (2, "text/plain", None),
            (2, "text/html", None),
            (2, "text/calendar", None),
            (1, "application/ics", "invite.ics"),
        ]
        inline = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
        assert inline.get_param("method") == method
        assert inline.get_content_charset() == "utf-8"
        assert message.get_content_disposition() is None
        invite = calendar_part(message)
        assert str(invite.calendar["METHOD"]) == method
        assert message["Message-ID"].startswith("<notify-")
    assert calendar_part(request).uid == calendar_part(cancel).uid
    assert (calendar_part(request).sequence, calendar_part(cancel).sequence) == (0, 1)
    assert str(calendar_part(cancel).event["STATUS"]) == "CANCELLED"
    # The patient's confirmation: their own file beside the text and HTML, not an invitation.
    confirmation = next(m for m in mail.handler.messages if m["To"] == "alex@example.com")
    assert _structure(confirmation) == [
        (0, "multipart/mixed", None),
        (1, "multipart/alternative", None),
        (2, "text/plain", None),
        (2, "text/html", None),
        (1, "text/calendar", "appointment.ics"),
    ]
    assert patient_calendar(confirmation).uid == calendar_part(request).uid


@pytest.mark.slow
def test_booking_to_the_providers_calendar_and_the_patients(
    backend: str,
    make_app: Callable[..., Flask],
    upstream: Upstream,
    redis_client: Redis,
    tmp_path: Path,
) -> None:
    notify = make_app(provider_invites=True)
    staff = upstream.staff

    def last_to(address: str) -> EmailMessage:
        return [m for m in mail.handler.messages if m["To"] == address][-1]

    with time_machine.travel(MONDAY_NOON, tick=True), mail_server(tmp_path) as mail:
        smtp = SmtpEmailSender(host=mail.host, port=mail.port, security="none", timeout=5)
        use_senders(notify, email=smtp)
        setup = make_setup(upstream.app, reminder_protocol="video-consultation")
        # Monday 9 March, 10:00 in New York: the day after the clocks went forward, booked the week before.
        created = staff.post(
            "/api/v1/bookings", json=booking_body(setup, "2026-03-09T10:00:00-04:00"), headers=STAFF
        )
        assert created.status_code == 201, created.json
        booking_id = created.json["id"]
        upstream.relay()
        work(notify)

        invite = calendar_part(last_to("dr.test@example.com"))
        assert invite.uid == f"booking-{booking_id}@booking.example.test"
        assert b"DTSTART;TZID=America/New_York:20260309T100000" in invite.raw
        assert str(invite.event["SUMMARY"]) == "Video appointment: Jordan E."
        assert str(invite.event["ORGANIZER"]) == "mailto:appointments@localhost"

        # The invite's day-sheet link, signed by notify with the suite's link keys, opens booking's page.
        (sheet,) = re.findall(
            r"https://booking\.example\.test(/staff/day/\S+)", str(invite.event["DESCRIPTION"])
        )
        page = staff.get(sheet)  # no staff key: the link is the credential
        assert page.status_code == 200, page.data
        assert "Who is ready: Mon 9 Mar" in page.text
        assert "Jordan" in page.text

        confirmation = last_to("jordan@example.com")
        emailed = patient_calendar(confirmation)
        manage_path = MANAGE.search(confirmation.get_body(preferencelist=("plain",)).get_content()).group(1)  # type: ignore[union-attr]
        download = staff.get(manage_path + "/calendar.ics")
        assert download.status_code == 200
        downloaded: Invite = parse(download.data)
        # The manage page's file and the email's are the same entry, built by the same code in two services.
        assert _without_stamp(downloaded.raw) == _without_stamp(emailed.raw)
        assert b"DTSTART;TZID=Europe/London:20260309T140000" in emailed.raw

        moved = staff.post(
            f"/api/v1/bookings/{booking_id}/reschedule",
            json={"start": "2026-03-10T11:00:00-04:00"},
            headers=STAFF,
        )
        assert moved.status_code == 200, moved.json
        upstream.relay()
        work(notify)
        update = calendar_part(last_to("dr.test@example.com"))
        assert (update.uid, update.sequence) == (invite.uid, 1)
        assert b"DTSTART;TZID=America/New_York:20260310T110000" in update.raw
        assert patient_calendar(last_to("jordan@example.com")).sequence == 1

        cancelled = staff.post(f"/api/v1/bookings/{booking_id}/cancel", json={}, headers=STAFF)
        assert cancelled.status_code == 200, cancelled.json
        upstream.relay()
        work(notify)
        cancel = calendar_part(last_to("dr.test@example.com"))
        assert (cancel.method, cancel.uid, cancel.sequence) == ("CANCEL", invite.uid, 2)
        notice = patient_calendar(last_to("jordan@example.com"))
        assert (notice.sequence, str(notice.event["STATUS"])) == (2, "CANCELLED")
        smtp.close()
