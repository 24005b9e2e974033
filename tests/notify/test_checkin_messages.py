"""Notify's side of check-ins: the patient's link by SMS and email, on-call alerts at once, idempotent."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import time_machine
from flask import Flask

from services.notify import jobs
from shared import events
from tests.notify.conftest import MONDAY_NOON, messages, tick
from tests.notify.factories import CLINIC, Booking
from tests.notify.test_languages import ENGLISH, FORBIDDEN_IN_SPANISH_SMS
from tests.notify.test_protocols import FORBIDDEN_IN_SMS, GSM_7
from tests.notify.test_sms_segments import segments

URL = "http://checkins.test/c/token-1"


def _requested(booking: Booking, *, reminder: int = 0) -> dict[str, object]:
    return events.dump_event(
        events.CheckinRequestedEvent(
            booking_id=booking.id,
            booking_version=booking.version,
            checkin_id=uuid.uuid4(),
            checkin_url=URL,
            expires_at=MONDAY_NOON + timedelta(hours=36),
            reminder=reminder,
        )
    )


def _alert(booking: Booking) -> dict[str, object]:
    return events.dump_event(
        events.CheckinAlertEvent(
            alert_id=uuid.uuid4(),
            booking_id=booking.id,
            alert_url="http://checkins.test/alerts/token-2",
            sms_to=["+14155550100", "+14155550101"],
            email_to=["oncall@clinic.test"],
        )
    )


def _handle(app: Flask, handler: str, payload: dict[str, object]) -> str:
    with app.app_context():
        return str(getattr(jobs, handler)(payload))


def test_a_check_in_link_goes_by_sms_and_email_naming_only_the_clinic(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON - timedelta(days=1))
    _handle(app, "handle_booking_event", booking.confirmed(at=MONDAY_NOON - timedelta(days=3)))
    payload = _requested(booking)
    assert _handle(app, "handle_checkin_requested", payload) == "handled"
    assert _handle(app, "handle_checkin_requested", payload) == "duplicate"
    tick(app)
    sent = [m for m in messages(app) if m.protocol == "checkins"]
    assert sorted((m.channel, m.status, m.recipient) for m in sent) == [
        ("email", "sent", "alex@example.com"),
        ("sms", "sent", "+14155552671"),
    ]
    sms = next(m for m in sent if m.channel == "sms")
    assert URL in (sms.body or "")
    assert "Reply STOP to opt out." in (sms.body or "")
    email = next(m for m in sent if m.channel == "email")
    assert email.subject == f"A short check-in from {CLINIC.name}"


def test_without_sms_consent_only_the_email_goes_and_quiet_hours_hold_the_sms(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON - timedelta(days=1), sms_consent=False)
    _handle(app, "handle_booking_event", booking.confirmed(at=MONDAY_NOON - timedelta(days=3)))
    _handle(app, "handle_checkin_requested", _requested(booking))
    tick(app)
    sent = {m.channel: m.status for m in messages(app) if m.protocol == "checkins"}
    assert sent == {"sms": "skipped", "email": "sent"}
    # 23:00 in London: a consenting patient's SMS waits for the morning, the email does not.
    clock.move_to(MONDAY_NOON + timedelta(hours=11))
    other = Booking(start=MONDAY_NOON - timedelta(days=1))
    _handle(app, "handle_booking_event", other.confirmed(at=MONDAY_NOON - timedelta(days=3)))
    _handle(app, "handle_checkin_requested", _requested(other, reminder=1))
    tick(app)
    mine = {m.channel: m for m in messages(app, booking_id=other.id) if m.protocol == "checkins"}
    assert mine["email"].status == "sent"
    assert mine["email"].subject == f"Reminder: a short check-in from {CLINIC.name}"
    assert mine["sms"].status == "planned"
    assert mine["sms"].due_at > MONDAY_NOON + timedelta(hours=11)


def test_an_alert_goes_at_once_to_every_on_call_contact_whatever_the_patient_chose(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    clock.move_to(MONDAY_NOON + timedelta(hours=11))  # quiet hours for the patient: alerts do not wait
    booking = Booking(start=MONDAY_NOON - timedelta(days=1), sms_consent=False, phone=None)
    _handle(app, "handle_booking_event", booking.confirmed(at=MONDAY_NOON - timedelta(days=3)))
    assert _handle(app, "handle_checkin_alert", _alert(booking)) == "handled"
    tick(app)
    sent = sorted(
        (m.channel, m.recipient, m.status, m.urgent) for m in messages(app) if m.protocol == "checkins"
    )
    assert sent == [
        ("email", "oncall@clinic.test", "sent", True),
        ("sms", "+14155550100", "sent", True),
        ("sms", "+14155550101", "sent", True),
    ]
    for message in messages(app):
        if message.protocol == "checkins":
            text = f"{message.subject or ''} {message.body or ''}"
            assert "http://checkins.test/alerts/token-2" in text
            assert "Alex" not in text


def test_an_event_for_a_booking_notify_has_not_seen_is_retried(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    unknown = Booking(start=MONDAY_NOON)
    with pytest.raises(LookupError):
        _handle(app, "handle_checkin_requested", _requested(unknown))
    # Nothing was recorded, so the retry applies it once the booking has arrived.
    _handle(app, "handle_booking_event", unknown.confirmed(at=MONDAY_NOON - timedelta(days=3)))
    assert _handle(app, "handle_checkin_requested", _requested(unknown)) == "handled"


def test_a_spanish_patients_check_in_messages_are_in_spanish_and_the_sms_stays_gsm_7(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON - timedelta(days=1), language="es", time_zone="America/New_York")
    _handle(app, "handle_booking_event", booking.confirmed(at=MONDAY_NOON - timedelta(days=3)))
    for reminder in (0, 1):
        _handle(app, "handle_checkin_requested", _requested(booking, reminder=reminder))
    tick(app)
    sent = [m for m in messages(app, booking_id=booking.id) if m.protocol == "checkins"]
    texts = {(m.channel, m.step.rsplit(":", 1)[1]): (m.subject, m.body or "") for m in sent}
    sms, reminder_sms = texts[("sms", "0")][1], texts[("sms", "1")][1]
    # The clinic's SMS name leaves its treatment out (lock screens).
    assert sms == (
        f"Demo Clinic: su equipo de cuidado le pide un breve seguimiento: {URL}\nResponda STOP para darse de baja."
    )
    assert reminder_sms.startswith("Recordatorio de Demo Clinic: su equipo")
    subject, body = texts[("email", "0")]
    assert subject == f"Un breve seguimiento de {CLINIC.name}"
    assert texts[("email", "1")][0] == f"Recordatorio: un breve seguimiento de {CLINIC.name}"
    assert body.startswith("Hola:\n\nSu equipo de atención")
    # 36 hours after Monday noon UTC (Wednesday 00:00), in the patient's zone, as Spanish words a time.
    assert "El enlace funciona hasta el 3 de marzo, 7:00 p. m. EST." in body
    assert "oprima 2" in body
    for text in (sms, reminder_sms, subject, body):
        assert not ENGLISH.search(text.replace(CLINIC.name, "").replace("Demo Clinic", "")), text
    for text in (sms, reminder_sms):
        assert not FORBIDDEN_IN_SMS.search(text)
        assert not FORBIDDEN_IN_SPANISH_SMS.search(text)
        assert set(text) <= GSM_7
        assert segments(text)[0] <= 2
