"""Notify's side of "send my current link again" (issue 17 point 5): the newest link, at once, by SMS and
email as the patient allowed, once per request however often the event comes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from flask import Flask

from services.notify import jobs, optouts
from services.notify.models import CANCELLED, PLANNED, SENT, SKIPPED, Message
from services.notify.runtime import Runtime
from services.notify.senders.smtp_email import SmtpEmailSender
from shared import events, links
from tests.booking.factories import booking_body, make_setup
from tests.notify.conftest import (
    MONDAY_NOON,
    STAFF,
    Upstream,
    deliver,
    messages,
    outbox,
    tick,
    twilio_sender,
    use_senders,
    work,
)
from tests.notify.doubles import mail_server
from tests.notify.factories import Booking, course_sessions
from tests.support.twilio_mock import PrismServer

MANAGE = re.compile(r"https://booking\.example\.test/manage/(\S+)")
SHORT = re.compile(r"https://booking\.example\.test/m/(\S+)")


def _requested(booking: Booking) -> dict[str, object]:
    return events.dump_event(
        events.LinkRequestedEvent(booking_id=booking.id, booking_version=booking.version)
    )


def _handle(app: Flask, payload: dict[str, object]) -> str:
    with app.app_context():
        return jobs.handle_link_requested(payload)


def _link_rows(app: Flask, booking: Booking) -> list[Message]:
    return [m for m in messages(app, booking_id=booking.id) if m.step.startswith("link-again:")]


def _version_of(app: Flask, sms: str) -> int:
    runtime: Runtime = app.extensions["notify"]
    code = SHORT.search(sms).group(1)  # type: ignore[union-attr]
    return links.verify_short(runtime.signer.keys, code, purpose=links.MANAGE).version


def test_the_current_link_goes_at_once_in_quiet_hours_and_once_per_request(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON + timedelta(days=3))
    deliver(app, booking.confirmed(at=MONDAY_NOON - timedelta(days=1)))
    deliver(app, booking.reschedule(MONDAY_NOON + timedelta(days=4), at=MONDAY_NOON - timedelta(hours=1)))
    clock.move_to(MONDAY_NOON + timedelta(hours=11))  # 23:00 in London: quiet hours hold routine SMS
    payload = _requested(booking)
    assert _handle(app, payload) == "handled"
    assert _handle(app, payload) == "duplicate"
    tick(app)
    rows = _link_rows(app, booking)
    assert sorted((m.channel, m.status, m.urgent) for m in rows) == [
        ("email", SENT, True),
        ("sms", SENT, True),
    ]
    sms = next(m for m in rows if m.channel == "sms")
    assert sms.recipient == "+14155552671"
    assert (sms.body or "").startswith("Demo Clinic: as you asked, the current link to your")
    assert "Alex" not in (sms.body or "")
    assert _version_of(app, sms.body or "") == 2
    email = next(m for m in rows if m.channel == "email")
    assert email.subject == "The current link to your appointment"
    # A second request is a second pair of messages.
    assert _handle(app, _requested(booking)) == "handled"
    tick(app)
    assert len(_link_rows(app, booking)) == 4


def test_consent_and_opt_outs_are_kept(app: Flask, runtime: Runtime, clock: time_machine.Coordinates) -> None:
    no_consent = Booking(start=MONDAY_NOON + timedelta(days=3), sms_consent=False)
    opted_out = Booking(start=MONDAY_NOON + timedelta(days=3), phone="+14155550199")
    for booking in (no_consent, opted_out):
        deliver(app, booking.confirmed(at=MONDAY_NOON - timedelta(days=1)))
    with app.app_context(), runtime.db.transaction() as session:
        optouts.set_opt_out(session, "+14155550199", opted_out=True, source="test")
    for booking in (no_consent, opted_out):
        _handle(app, _requested(booking))
    tick(app)
    for booking, reason in (
        (no_consent, "the patient did not consent to SMS"),
        (opted_out, "the number opted out of SMS"),
    ):
        found = {m.channel: m for m in _link_rows(app, booking)}
        assert found["email"].status == SENT
        assert (found["sms"].status, found["sms"].reason) == (SKIPPED, reason)


def test_a_change_before_it_goes_sends_the_newer_link_instead_of_cancelling_it(
    app: Flask, runtime: Runtime, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=MONDAY_NOON + timedelta(days=3))
    deliver(app, booking.confirmed(at=MONDAY_NOON - timedelta(days=1)))
    _handle(app, _requested(booking))  # planned at version 1; not sent yet
    deliver(app, booking.cancel(at=MONDAY_NOON))
    tick(app)
    rows = _link_rows(app, booking)
    assert {m.status for m in rows} == {SENT}
    sms = next(m for m in rows if m.channel == "sms")
    assert _version_of(app, sms.body or "") == 2
    # The booking's own reminders of version 1 were cancelled as usual.
    assert {
        m.status for m in messages(app, booking_id=booking.id, booking_version=1, step="reminder-24h")
    } == {CANCELLED}


def test_an_event_for_a_booking_notify_has_not_seen_is_retried(app: Flask, clock: object) -> None:
    with pytest.raises(LookupError):
        _handle(app, _requested(Booking(start=MONDAY_NOON, id=uuid.uuid4())))
    # Nothing was recorded as handled: the retry plans the messages.
    assert messages(app) == []


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "es"])
def test_old_link_to_sms_and_email_end_to_end(
    language: str,
    make_app: Callable[..., Flask],
    upstream: Upstream,
    twilio_api_mock: PrismServer,
    tmp_path: Path,
) -> None:
    # The booking API moves a booking; its old link asks for the current one; the outbox relay, Redis and a
    # notify worker carry booking.link_requested; Twilio (Prism) gets the SMS and SMTP (aiosmtpd) the email.
    notify = make_app()
    staff = upstream.staff
    with time_machine.travel(MONDAY_NOON, tick=True), mail_server(tmp_path) as mail:
        smtp = SmtpEmailSender(host=mail.host, port=mail.port, security="none", timeout=5)
        sms = twilio_sender(base_url=twilio_api_mock.url)
        use_senders(notify, sms=sms, email=smtp)
        setup = make_setup(upstream.app)
        body = booking_body(setup, "2026-03-04T10:00:00-05:00")
        body["patient"]["language"] = language
        created = staff.post("/api/v1/bookings", json=body, headers=STAFF)
        assert created.status_code == 201, created.json
        old_token = created.json["manage_url"].rsplit("/", 1)[1]
        moved = staff.post(
            f"/api/v1/bookings/{created.json['id']}/reschedule",
            json={"start": "2026-03-05T11:00:00-05:00"},
            headers=STAFF,
        )
        assert moved.status_code == 200, moved.json
        upstream.relay()
        work(notify)
        before = len(mail.handler.messages)
        asked = staff.post(f"/api/v1/manage/{old_token}/send-link")
        assert asked.status_code == 202
        assert upstream.relay() == 1
        work(notify)
        sent = [m for m in messages(notify) if m.step.startswith("link-again:")]
        assert sorted((m.channel, m.status) for m in sent) == [("email", SENT), ("sms", SENT)]
        assert next(m for m in sent if m.channel == "sms").provider_ref.startswith("SM")  # Prism, as Twilio
        assert len(mail.handler.messages) == before + 1
        email = mail.handler.messages[-1]
        assert email["To"] == "jordan@example.com"
        subject = {"en": "The current link to your appointment", "es": "El enlace vigente de su cita"}
        assert email["Subject"] == subject[language]
        token = MANAGE.search(email.get_body(preferencelist=("plain",)).get_content()).group(1)  # type: ignore[union-attr]
        # The link it carries is the current one: it opens the booking, where the old one says "changed".
        assert staff.get(f"/api/v1/manage/{token}").status_code == 200
        assert staff.get(f"/api/v1/manage/{old_token}").status_code == 409
        smtp.close()
        sms.close()


# --- a course's page link, asked for from an expired course link ----------------------------------------------


def _course_requested(booking: Booking) -> dict[str, object]:
    assert booking.course is not None
    return events.dump_event(
        events.LinkRequestedEvent(
            booking_id=booking.id, booking_version=booking.version, course_id=booking.course.id
        )
    )


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_course_s_link_goes_with_the_course_s_words_valid_to_its_last_session(
    app: Flask, clock: time_machine.Coordinates, language: str
) -> None:
    sessions = course_sessions(MONDAY_NOON + timedelta(days=1))
    for booking in sessions:
        booking.language = language
        deliver(app, booking.confirmed(at=MONDAY_NOON - timedelta(days=1)))
    last = sessions[-1]
    assert last.course is not None
    payload = _course_requested(last)
    assert _handle(app, payload) == "handled"
    assert _handle(app, payload) == "duplicate"
    tick(app)
    rows = _link_rows(app, last)
    assert {m.step for m in rows} == {f"link-again:course:{payload['event_id']}"}
    assert sorted((m.channel, m.status, m.urgent) for m in rows) == [
        ("email", SENT, True),
        ("sms", SENT, True),
    ]
    sms = next(m for m in rows if m.channel == "sms").body or ""
    email = next(m for m in rows if m.channel == "email")
    words = {
        "en": (
            "Demo Clinic: as you asked, the link to your sessions: ",
            "The link to your sessions",
        ),
        "es": ("Demo Clinic: a su pedido, el enlace de sus sesiones: ", "El enlace de sus sesiones"),
    }[language]
    assert sms.startswith(words[0]), sms
    assert email.subject == words[1]
    assert "Alex" not in sms
    assert "/manage/" not in sms  # the course's page, not one session's
    assert "/m/" not in sms
    runtime: Runtime = app.extensions["notify"]
    code = re.search(r"https://booking\.example\.test/c/(\S+)", sms)
    assert code, sms
    short = links.verify_short(runtime.signer.keys, code.group(1), purpose=links.COURSE)
    assert short.subject == str(last.course.id)
    (sent,) = [m for m in outbox(app, "email") if m.subject == words[1]]
    assert "Alex" in sent.text  # the email greets the patient, as every email does; the SMS does not
    full = re.search(r"https://booking\.example\.test/course/(\S+)", sent.text)
    assert full, sent.text
    claims = runtime.signer.verify(full.group(1), purpose=links.COURSE)
    assert claims.subject == str(last.course.id)
    # It lives as the booking service's own course link does: until a week after the last session ends (the
    # short form to the end of that day).
    assert claims.expires_at == last.end + links.MANAGE_LINK_GRACE
    assert short.expires_at >= claims.expires_at
    # The session's own plan is untouched by it: its reminders are still planned.
    assert {m.status for m in messages(app, booking_id=last.id, step="prep-24h")} == {PLANNED}


def test_a_course_link_request_for_a_session_notify_does_not_know_as_the_course_s_is_retried(
    app: Flask, clock: object
) -> None:
    sessions = course_sessions(MONDAY_NOON + timedelta(days=1))
    alone = Booking(start=MONDAY_NOON + timedelta(days=3))
    deliver(app, alone.confirmed(at=MONDAY_NOON - timedelta(days=1)))
    assert sessions[0].course is not None
    stray = events.dump_event(
        events.LinkRequestedEvent(booking_id=alone.id, booking_version=1, course_id=sessions[0].course.id)
    )
    with pytest.raises(LookupError):
        _handle(app, stray)
    assert _link_rows(app, alone) == []
    # An old payload without the field is a booking's own link, as before.
    old = dict(_requested(alone))
    old.pop("course_id")
    assert events.load_link_requested(old).course_id is None
    assert _handle(app, old) == "handled"
    assert {m.step.startswith("link-again:course:") for m in _link_rows(app, alone)} == {False}
