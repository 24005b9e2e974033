"""An escort's replies, as Twilio posts them (signed) through the real notify app: YES confirms the pick-up once
per MessageSid, a late YES gets the truth, STOP stops the escort's SMS only; no escort detail is logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from services.notify.escorts import base_key, is_escort_step
from services.notify.models import CANCELLED, SENT, SKIPPED, Message
from shared.events import ATTENDANCE_CONFIRMED, ESCORT_CONFIRMED, load_sms_reply
from tests.notify.conftest import MONDAY_NOON, deliver, messages, outbox, tick
from tests.notify.factories import ESCORT_PHONE, Booking
from tests.notify.replies.test_replies import booking_jobs, reply, reply_rows

START = MONDAY_NOON + timedelta(days=3, hours=3)  # Thursday 5 March, 15:00 UTC
QUIET_ENDS = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 08:00 in New York, the clinic's zone


def asked(app: Flask, clock: time_machine.Coordinates, **kwargs: Any) -> Booking:
    """An infusion booking whose escort was sent the pick-up SMS that asks YES."""
    booking = Booking(start=START, kind="infusion-session", patient_name="Alex Quillfeather", **kwargs)
    clock.move_to(QUIET_ENDS)
    deliver(app, booking.confirmed(at=QUIET_ENDS))
    deliver(app, booking.give_escort(at=QUIET_ENDS))
    tick(app)
    assert escort_plan(app, booking)["escort-pickup"].status == SENT
    return booking


def escort_plan(app: Flask, booking: Booking) -> dict[str, Message]:
    rows = [m for m in messages(app, booking_id=booking.id) if is_escort_step(m.step)]
    return {base_key(m.step): m for m in rows}


def published(redis_client: Redis) -> list[Any]:
    return [load_sms_reply(p) for p in booking_jobs(redis_client)]


@pytest.mark.parametrize("body", ["YES", " yes! ", "Confirm ✅", "CONFIRMAR", "Sí 👍", "si"])
def test_the_escorts_yes_confirms_the_pickup_once(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis, body: str
) -> None:
    booking = asked(app, clock)
    sid = "SM" + "e" * 32
    answer = reply(client, body, sid=sid, phone=ESCORT_PHONE)
    assert answer == (
        "Demo Clinic: thank you, Sam. Pickup of Alex confirmed: Thu 5 Mar 2026, 12:00 PM EST, "
        "200 Demo Avenue, Suite 3, Brooklyn, NY 11201."
    )
    assert reply(client, body, sid=sid, phone=ESCORT_PHONE) == answer  # Twilio retried: done once
    (event,) = published(redis_client)
    assert (event.booking_id, event.booking_version, event.meaning) == (booking.id, 1, ESCORT_CONFIRMED)
    (row,) = reply_rows(app)
    assert (row.intent, row.outcome, row.body) == ("escort-confirm", "escort-confirmed", None)
    # The nudge and the alert are no longer needed.
    plan = escort_plan(app, booking)
    assert (plan["escort-nudge-24h"].status, plan["escort-alert-2h"].status) == (CANCELLED, CANCELLED)
    clock.move_to(START - timedelta(hours=1))
    tick(app)
    assert not [m for m in outbox(app, "email") if m.recipient == "frontdesk@clinic.example"]


def test_a_spanish_patients_escort_is_thanked_in_spanish(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    asked(app, clock, language="es")
    answer = reply(client, "SÍ", phone=ESCORT_PHONE)
    assert answer.startswith("Demo Clinic: gracias, Sam. Recogida de Alex confirmada:")
    assert len(published(redis_client)) == 1


def test_a_yes_after_a_cancel_gets_the_truth(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = asked(app, clock)
    deliver(app, booking.cancel(at=QUIET_ENDS))
    answer = reply(client, "YES", phone=ESCORT_PHONE)
    assert answer == (
        "Demo Clinic: the pickup of Alex was cancelled, so there is nothing to confirm: no pickup needed."
    )
    assert published(redis_client) == []


def test_a_yes_from_an_escort_no_longer_given_confirms_nothing(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = asked(app, clock)
    deliver(app, booking.give_escort(at=QUIET_ENDS, first_name="Robin", phone="+14155550188"))
    answer = reply(client, "YES", phone=ESCORT_PHONE)
    assert "you are no longer down for this pickup" in answer
    assert "Robin" not in answer
    assert published(redis_client) == []


def test_a_yes_to_a_time_that_has_moved_confirms_nothing(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = asked(app, clock)
    night = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 22:00 in New York: the escort's notice waits
    clock.move_to(night)
    deliver(app, booking.reschedule(START + timedelta(days=1), at=night))
    tick(app)
    answer = reply(client, "YES", phone=ESCORT_PHONE)
    assert "has moved to Fri 6 Mar 2026, 12:00 PM EST; nothing was confirmed" in answer
    assert published(redis_client) == []


def test_a_number_that_is_a_patients_and_an_escorts_answers_the_nearest_ask(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    # Sam is the escort of Alex's Friday session and a patient with a video visit of their own on Thursday.
    friends = Booking(start=START + timedelta(days=1), kind="infusion-session")
    own = Booking(start=START, phone=ESCORT_PHONE, patient_name="Sam Other")
    clock.move_to(QUIET_ENDS)
    deliver(app, friends.confirmed(at=QUIET_ENDS))
    deliver(app, friends.give_escort(at=QUIET_ENDS))
    deliver(app, own.confirmed(at=QUIET_ENDS))
    clock.move_to(START - timedelta(hours=23))
    tick(app)  # the pick-up SMS and Sam's own reminder (which asks C) have gone
    assert "is confirmed" in reply(client, "YES", phone=ESCORT_PHONE)
    clock.move_to(START + timedelta(hours=2))  # Sam's own visit is over: the YES is about the pick-up
    assert "Pickup of Alex confirmed" in reply(client, "YES", phone=ESCORT_PHONE)
    assert [(e.booking_id, e.meaning) for e in published(redis_client)] == [
        (own.id, ATTENDANCE_CONFIRMED),
        (friends.id, ESCORT_CONFIRMED),
    ]


def test_stop_from_the_escort_stops_the_escorts_sms_only(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    booking = asked(app, clock)
    assert reply(client, "STOP", phone=ESCORT_PHONE) == ""
    clock.move_to(START - timedelta(hours=24))
    tick(app)
    assert escort_plan(app, booking)["escort-nudge-24h"].status == SENT  # the patient's number
    deliver(app, booking.cancel(at=START - timedelta(hours=24)))
    tick(app)
    notice = escort_plan(app, booking)["escort-cancelled"]
    assert (notice.status, notice.reason) == (SKIPPED, "the number opted out of SMS")
    assert reply(client, "START", phone=ESCORT_PHONE) == ""  # restored for later bookings


def test_no_escort_name_or_number_is_logged(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    booking = asked(app, clock)
    reply(client, "YES", phone=ESCORT_PHONE)
    deliver(app, booking.give_escort(at=QUIET_ENDS, first_name="Robin", phone="+14155550188"))
    deliver(app, booking.cancel(at=QUIET_ENDS))
    tick(app)
    logged = caplog.text + "".join(str(vars(r)) for r in caplog.records)
    assert "escort change applied" in logged
    for secret in ("Sam", "Robin", ESCORT_PHONE, ESCORT_PHONE[2:], "4155550188", "Quillfeather"):
        assert secret not in logged, secret
