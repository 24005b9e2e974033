"""Two-way SMS: a patient's reply to a reminder, as Twilio posts it (signed), through the real notify app."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select

from services.notify.models import SENT, ReplyDelivery, SmsReply
from services.notify.replies import publishing
from shared.events import load_sms_reply
from shared.queues import BOOKING_QUEUE, queue
from tests.notify.conftest import MONDAY_NOON, by_step, deliver, tick, work
from tests.notify.factories import Booking
from tests.notify.test_webhooks import PHONE, signed_post

START = MONDAY_NOON + timedelta(days=3, hours=3)  # Thursday 15:00 UTC
INBOUND = "/webhooks/twilio/inbound"


def twilio_inbound(body: str, *, sid: str | None = None, phone: str = PHONE) -> dict[str, str]:
    """The form Twilio posts for an inbound SMS (the fields of a recorded request, our values)."""
    sid = sid or "SM" + uuid.uuid4().hex
    return {
        "ToCountry": "US",
        "ToState": "NY",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "CA",
        "SmsStatus": "received",
        "FromCity": "SAN FRANCISCO",
        "Body": body,
        "FromCountry": "US",
        "To": "+17185550199",
        "MessagingServiceSid": "MG" + "0" * 32,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "ApiVersion": "2010-04-01",
    }


def reply(client: FlaskClient, body: str, **kwargs: Any) -> str:
    """Post an inbound SMS; the text of the answer (empty when none)."""
    response = signed_post(client, INBOUND, twilio_inbound(body, **kwargs))
    assert response.status_code == 200, response.text
    assert response.mimetype == "application/xml"
    found = ElementTree.fromstring(response.text).find("Message")
    return "" if found is None else (found.text or "")


def reminded(app: Flask, clock: time_machine.Coordinates, *bookings: Booking) -> None:
    """Book each, then move to the day before the first and send the reminders that ask for a reply."""
    for booking in bookings:
        deliver(app, booking.confirmed(at=MONDAY_NOON))
    work(app)
    clock.move_to(min(b.start for b in bookings) - timedelta(hours=23))
    tick(app)
    for booking in bookings:
        if booking.start - timedelta(hours=24) <= min(b.start for b in bookings) - timedelta(hours=23):
            assert by_step(app, booking_id=booking.id)[("reminder-24h", "sms")].status == SENT


def reply_rows(app: Flask) -> list[SmsReply]:
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        return list(session.scalars(select(SmsReply).order_by(SmsReply.id)))


def booking_jobs(redis_client: Redis) -> list[dict[str, Any]]:
    """The reply events waiting on the booking queue, as the booking worker will load them."""
    jobs = queue(BOOKING_QUEUE, redis_client).get_jobs()
    return [job.args[0] for job in jobs]


def test_c_confirms_the_visit_the_reminder_asked_about_and_publishes_it_once(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = Booking(start=START)
    reminded(app, clock, booking)
    sms = by_step(app)[("reminder-24h", "sms")]
    assert "Reply C to confirm, R to change" in (sms.body or "")

    sid = "SM" + "c" * 32
    answer = reply(client, " c ", sid=sid)
    assert "is confirmed" in answer
    assert "Thu 5 Mar 2026, 3:00 PM GMT" in answer  # the patient's zone
    # Twilio retries the same message: the same answer, nothing done twice.
    assert reply(client, "c", sid=sid) == answer
    (row,) = reply_rows(app)
    assert (row.intent, row.outcome, row.booking_id, row.booking_version) == (
        "confirm",
        "confirmed",
        booking.id,
        1,
    )
    assert row.body is None  # understood: the text is not kept
    assert row.published_at is not None
    (payload,) = booking_jobs(redis_client)
    event = load_sms_reply(payload)
    assert (event.booking_id, event.booking_version, event.meaning) == (booking.id, 1, "attendance_confirmed")
    assert PHONE not in str(payload)
    assert "c" not in {str(v).strip().lower() for v in payload.values()}


def test_r_answers_with_the_manage_link_and_changes_nothing(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    reminded(app, clock, Booking(start=START))
    answer = reply(client, "R")
    assert "https://booking.example.test/manage/" in answer
    assert booking_jobs(redis_client) == []
    assert reply_rows(app)[0].outcome == "manage-link"


def test_two_open_visits_ask_which_and_the_day_picks_one(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    first, second = Booking(start=START), Booking(start=START + timedelta(hours=20))  # Thu 5, Fri 6
    reminded(app, clock, first, second)
    clock.move_to(second.start - timedelta(hours=23))  # Thursday noon: both reminders have gone
    tick(app)
    answer = reply(client, "YES")
    assert "Thu 5 Mar 2026" in answer
    assert "Fri 6 Mar 2026" in answer
    assert "Reply C and the day, e.g. C 5" in answer
    assert booking_jobs(redis_client) == []
    answer = reply(client, "C 6")
    assert "Fri 6 Mar 2026" in answer
    assert "confirmed" in answer
    (payload,) = booking_jobs(redis_client)
    assert payload["booking_id"] == str(second.id)


def test_a_reply_after_a_cancel_or_a_reschedule_gets_the_truth(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    cancelled, moved = Booking(start=START), Booking(start=START + timedelta(days=1), phone="+14155550123")
    reminded(app, clock, cancelled)
    deliver(app, cancelled.cancel(at=START - timedelta(hours=22)))
    answer = reply(client, "C")
    assert "was cancelled" in answer
    assert "confirmed" not in answer

    deliver(app, moved.confirmed(at=MONDAY_NOON))
    clock.move_to(moved.start - timedelta(hours=23))
    tick(app)
    deliver(app, moved.reschedule(moved.start + timedelta(days=7), at=moved.start - timedelta(hours=22)))
    answer = reply(client, "CONFIRM", phone="+14155550123")
    assert "has moved to Fri 13 Mar 2026" in answer
    assert "nothing was confirmed" in answer
    assert booking_jobs(redis_client) == []


def test_anything_else_gets_short_help_and_is_kept_for_staff_but_never_logged(
    app: Flask,
    client: FlaskClient,
    clock: time_machine.Coordinates,
    caplog: pytest.LogCaptureFixture,
    redis_client: Redis,
) -> None:
    reminded(app, clock, Booking(start=START))
    caplog.set_level(logging.DEBUG)
    text = "Running 10 min late, is that ok? 🙏"
    answer = reply(client, text)
    assert "reply C to confirm" in answer
    (row,) = reply_rows(app)
    assert (row.outcome, row.body) == ("kept", text)
    assert text not in caplog.text
    assert "Running" not in caplog.text
    assert PHONE not in caplog.text
    listed = client.get("/api/v1/replies", headers={"Authorization": "Bearer dev-api-key"})
    assert listed.status_code == 200
    assert listed.json[0]["body"] == text
    assert listed.json[0]["booking_id"] == str(row.booking_id)


def test_stop_always_wins_and_nothing_is_answered_afterwards(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    reminded(app, clock, Booking(start=START))
    assert reply(client, "STOP") == ""
    assert reply(client, "C") == ""  # an opted-out number gets no answer
    assert booking_jobs(redis_client) == []
    assert [r.outcome for r in reply_rows(app)] == ["stop", "opted-out"]
    # YES is Twilio's opt-in keyword too: it opts back in and confirms.
    assert "is confirmed" in reply(client, "Yes")
    assert len(booking_jobs(redis_client)) == 1


def test_a_number_with_no_question_open_gets_a_neutral_answer(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)  # only the confirmation went: nothing asked for a reply yet
    answer = reply(client, "C")
    assert "could not match" in answer
    assert reply_rows(app)[0].outcome == "unmatched"
    assert booking_jobs(redis_client) == []


def test_an_inbound_sms_without_message_sid_is_a_422(app: Flask, client: FlaskClient) -> None:
    form = {
        k: v for k, v in twilio_inbound("C").items() if k not in ("MessageSid", "SmsSid", "SmsMessageSid")
    }
    from twilio.request_validator import RequestValidator

    from tests.notify.conftest import AUTH_TOKEN

    signature = RequestValidator(AUTH_TOKEN).compute_signature("https://notify.example.test" + INBOUND, form)
    response = client.post(INBOUND, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 422
    assert "MessageSid" in str(response.json)
    assert reply_rows(app) == []


def test_an_event_redis_lost_is_published_again_until_the_booking_service_acknowledges(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    reminded(app, clock, Booking(start=START))
    reply(client, "C")
    redis_client.flushall()  # Redis lost the job
    runtime = app.extensions["notify"]
    clock.shift(timedelta(seconds=runtime.config.event_redeliver_seconds + 1))
    with app.app_context():
        report = publishing.relay_once(runtime)
    assert report.redelivered == 1
    (payload,) = booking_jobs(redis_client)
    # The booking worker acknowledges; the next pass settles the ledger.
    redis_client.rpush("suite:acks:notify", f"booking notify.sms_reply {payload['event_id']}")
    with app.app_context():
        publishing.relay_once(runtime)
    with app.app_context(), runtime.db.transaction() as session:
        (ledger,) = session.scalars(select(ReplyDelivery))
        assert (ledger.consumer, ledger.outcome, ledger.sends) == ("booking", "handled", 2)
