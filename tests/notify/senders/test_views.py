"""The console outbox page: every SMS and email "sent", with downloadable attachments."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from datetime import timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from tests.notify.conftest import MONDAY_NOON, deliver, outbox, work
from tests.notify.factories import Booking


def test_outbox_lists_and_shows_sms_and_email(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    deliver(
        app, Booking(start=MONDAY_NOON + timedelta(days=4), kind="infusion-session").confirmed(at=MONDAY_NOON)
    )
    work(app)
    sms, mail = outbox(app, "sms")[0], outbox(app, "email")[0]

    page = client.get("/outbox")
    assert page.status_code == 200
    assert "Showing 2 of 2" in page.text
    assert "+14155552671" in page.text
    # An in-clinic visit is told in the clinic's time (New York), the patient's (London) as a note.
    assert "Your appointment on Fri 6 Mar 2026, 7:00 AM EST is confirmed: how to prepare" in page.text
    assert "Showing 1 of 1" in client.get("/outbox?channel=sms").text

    shown = client.get(f"/outbox/{sms.id}")
    assert "Demo Clinic: your appointment is booked for" in shown.text

    detail = client.get(f"/outbox/{mail.id}")
    assert "preparation-checklist.txt" in detail.text
    html = client.get(f"/outbox/{mail.id}/html")
    assert html.headers["Content-Security-Policy"].startswith("sandbox")
    assert "How to prepare" in html.text

    attachment, calendar = mail.attachments
    assert (calendar.filename, calendar.content_type) == ("appointment.ics", "text/calendar")
    download = client.get(f"/outbox/{mail.id}/attachments/{attachment.id}")
    assert download.headers["Content-Disposition"] == 'attachment; filename="preparation-checklist.txt"'
    assert b"Arrange a support person to drive you home" in download.data

    raw = client.get(f"/outbox/{mail.id}/raw")
    parsed = email.message_from_bytes(raw.data, policy=email.policy.default)
    assert parsed["Subject"].strip() == mail.subject  # a long subject is folded onto its own line
    assert [p.get_filename() for p in parsed.iter_attachments()] == [
        "preparation-checklist.txt",
        "appointment.ics",  # the patient's own calendar entry (tests/notify/calendar)
    ]


def test_outbox_404s(app: Flask, client: FlaskClient) -> None:
    assert client.get("/outbox/12345").status_code == 404
    assert client.get("/outbox/12345/attachments/1").status_code == 404


def test_no_outbox_page_without_console_senders(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        sms_backend="twilio",
        email_backend="smtp",
        twilio_account_sid="AC" + "0" * 32,
        twilio_messaging_service_sid="MG" + "0" * 32,
        smtp_host="127.0.0.1",
    )
    assert app.test_client().get("/outbox").status_code == 404
