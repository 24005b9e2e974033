"""0-10 ratings asked by SMS and answered by reply: the question, the signed numeric reply, its ``reply.rating``
event (once), the next question, the truth after the ask closed, STOP first, and Spanish."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select

from services.notify import dispatch, jobs
from services.notify.models import SENT, RatingAsk, ReplyDelivery
from services.notify.replies import publishing, ratings
from shared import events
from shared.queues import CHECKINS_QUEUE, queue
from shared.timeutil import utcnow
from tests.notify.conftest import MONDAY_NOON, deliver, messages, tick
from tests.notify.factories import Booking
from tests.notify.replies.test_replies import reply, reply_rows
from tests.notify.test_languages import ENGLISH, FORBIDDEN_IN_SPANISH_SMS
from tests.notify.test_protocols import FORBIDDEN_IN_SMS, GSM_7
from tests.notify.test_sms_segments import segments

URL = "http://checkins.test/c/" + "t" * 160  # as long as a real signed check-in link
EXPIRES = MONDAY_NOON + timedelta(hours=36)
MOOD_QUESTION = "How have you been feeling today? Reply with a number from 0 (very low) to 10 (very good)."
PAIN_QUESTION = "How much physical discomfort have you had today? Reply with a number from 0 (none) to 10"


def ask(
    app: Flask,
    booking: Booking,
    rating: str | None,
    *,
    reminder: int = 0,
    checkin_id: uuid.UUID | None = None,
    expires_at: datetime = EXPIRES,
) -> uuid.UUID:
    """Deliver a ``checkin.requested`` for a check-in of ``rating`` (a new one unless given); its id."""
    checkin_id = checkin_id or uuid.uuid4()
    payload = events.dump_event(
        events.CheckinRequestedEvent(
            booking_id=booking.id,
            booking_version=booking.version,
            checkin_id=checkin_id,
            checkin_url=URL,
            expires_at=expires_at,
            reminder=reminder,
            rating=rating,
        )
    )
    with app.app_context():
        assert jobs.handle_checkin_requested(payload) == "handled"
    return checkin_id


def booked(app: Flask, **kwargs: Any) -> Booking:
    booking = Booking(start=MONDAY_NOON - timedelta(days=1), **kwargs)
    deliver(app, booking.confirmed(at=MONDAY_NOON - timedelta(days=3)))
    return booking


def sms_of(app: Flask, checkin_id: uuid.UUID) -> str:
    (row,) = [m for m in messages(app, channel="sms") if m.step.startswith(f"checkin:{checkin_id}:")]
    assert row.status == SENT
    return row.body or ""


def rating_jobs(redis_client: Redis) -> list[dict[str, Any]]:
    """The ``reply.rating`` events waiting on the checkins queue, as its worker will load them."""
    return [job.args[0] for job in queue(CHECKINS_QUEUE, redis_client).get_jobs()]


def asks(app: Flask) -> list[RatingAsk]:
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        return list(session.scalars(select(RatingAsk).order_by(RatingAsk.asked_at, RatingAsk.rating)))


def test_a_rating_goes_as_a_neutral_sms_question_and_its_link_by_email(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = booked(app)
    mood, pain, link = ask(app, booking, "mood"), ask(app, booking, "pain"), ask(app, booking, None)
    reminder = ask(app, booking, "pain", reminder=1)
    tick(app)
    texts = {name: sms_of(app, c) for name, c in [("mood", mood), ("pain", pain), ("reminder", reminder)]}
    assert texts["mood"] == f"Demo Clinic: {MOOD_QUESTION}\nReply STOP to opt out."
    assert texts["pain"].startswith(f"Demo Clinic: {PAIN_QUESTION} (the worst).")
    assert texts["reminder"].startswith("Demo Clinic: reminder: How much physical discomfort")
    assert "Reply with a number" not in sms_of(app, link)  # a questionnaire still goes as a link only
    assert URL in sms_of(app, link)
    emails = [m for m in messages(app, channel="email") if m.step.startswith(f"checkin:{mood}:")]
    assert [URL in (m.body or "") for m in emails] == [True]  # the other way to answer
    for text in texts.values():
        assert "http" not in text  # a signed link would make it three segments
        assert not FORBIDDEN_IN_SMS.search(text), text
        assert set(text) <= GSM_7
        assert segments(text)[0] <= 2, segments(text)
    # Only the ratings opened an ask (the reminder's is its check-in's own).
    assert {(a.checkin_id, a.rating, a.expires_at) for a in asks(app)} == {
        (mood, "mood", EXPIRES),
        (pain, "pain", EXPIRES),
        (reminder, "pain", EXPIRES),
    }


def test_a_signed_number_answers_the_ask_once_and_publishes_only_the_id_and_the_number(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = booked(app)
    mood = ask(app, booking, "mood")
    tick(app)
    clock.shift(timedelta(hours=1))
    sid = "SM" + "7" * 32
    answer = reply(client, " 7/10! ", sid=sid)
    assert answer == "Demo Clinic: thanks, we've received it."
    assert reply(client, "7", sid=sid) == answer  # Twilio retried: the same answer, nothing twice
    (row,) = reply_rows(app)
    assert (row.intent, row.outcome, row.checkin_id, row.rating, row.body) == (
        "rating",
        "rating-noted",
        mood,
        7,
        None,
    )
    (payload,) = rating_jobs(redis_client)
    event = events.load_reply_rating(payload)
    assert (event.checkin_id, event.value, event.event_id) == (mood, 7, row.event_id)
    assert set(payload) == {"event_id", "type", "schema_version", "occurred_at", "correlation_id"} | {
        "checkin_id",
        "value",
    }
    assert row.published_at is not None
    (ask_row,) = asks(app)
    assert ask_row.reply_id == row.id
    # The ledger waits for checkins' acknowledgement (which lands on notify's list: it publishes reply.*).
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        (ledger,) = session.scalars(select(ReplyDelivery))
    assert (ledger.consumer, ledger.event_type, ledger.outcome) == ("checkins", "reply.rating", None)
    redis_client.rpush("suite:acks:notify", f"checkins reply.rating {row.event_id}")
    with app.app_context():
        assert publishing.relay_once(app.extensions["notify"]).acknowledged == 1


def test_two_open_asks_are_answered_in_turn_and_the_thanks_asks_the_next(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = booked(app)
    mood = ask(app, booking, "mood")
    clock.shift(timedelta(seconds=1))
    pain = ask(app, booking, "pain")
    tick(app)
    first = reply(client, "7")
    assert first == f"Demo Clinic: thanks, we've received it. Next: {PAIN_QUESTION} (the worst)."
    assert segments(first)[0] <= 2
    assert reply(client, "3.") == "Demo Clinic: thanks, we've received it."
    answered = [(e.checkin_id, e.value) for e in map(events.load_reply_rating, rating_jobs(redis_client))]
    assert sorted(answered) == sorted([(mood, 7), (pain, 3)])
    # A third number: both questions have closed, and the patient is told the number was not recorded.
    assert reply(client, "5") == (
        "Demo Clinic: that question has closed, so this number was not recorded. Thank you."
    )
    assert len(rating_jobs(redis_client)) == 2


def test_a_number_after_the_ask_expired_gets_the_truth_and_publishes_nothing(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = booked(app)
    ask(app, booking, "mood")
    tick(app)
    clock.move_to(EXPIRES + timedelta(minutes=1))
    assert reply(client, "8") == (
        "Demo Clinic: that question has closed, so this number was not recorded. Thank you."
    )
    assert rating_jobs(redis_client) == []
    (row,) = reply_rows(app)
    assert (row.outcome, row.event_id, row.rating) == ("rating-closed", None, None)


def test_a_number_with_no_ask_or_out_of_range_gets_the_ordinary_help(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    assert reply(client, "7").startswith("We could not match your message")
    booking = booked(app)
    ask(app, booking, "mood")
    # Not sent yet (the SMS is planned, not sent): the patient has seen no question to answer.
    assert reply(client, "6").startswith("We could not match your message")
    tick(app)
    assert reply(client, "11").startswith("We could not match your message")
    assert [(r.outcome, r.body) for r in reply_rows(app)] == [
        ("kept", "7"),
        ("kept", "6"),
        ("kept", "11"),
    ]  # kept for staff, as any message not understood
    assert rating_jobs(redis_client) == []
    (open_ask,) = asks(app)
    assert open_ask.closed_at is None


def test_stop_wins_and_a_number_afterwards_is_neither_answered_nor_published(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = booked(app)
    ask(app, booking, "mood")
    tick(app)
    assert reply(client, "STOP") == ""
    assert reply(client, "7") == ""
    assert [r.outcome for r in reply_rows(app)] == ["stop", "opted-out"]
    assert rating_jobs(redis_client) == []
    # A rating asked after STOP is not sent, so it opens nothing a number could answer.
    later = ask(app, booking, "pain")
    tick(app)
    (row,) = [m for m in messages(app, channel="sms") if m.step.startswith(f"checkin:{later}:")]
    assert row.status == "skipped"


def test_a_spanish_patient_is_asked_and_thanked_in_spanish(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = booked(app, language="es")
    mood = ask(app, booking, "mood")
    clock.shift(timedelta(seconds=1))
    pain = ask(app, booking, "pain")
    tick(app)
    mood_sms, pain_sms = sms_of(app, mood), sms_of(app, pain)
    assert mood_sms == (
        "Demo Clinic: ¿Como se ha sentido hoy? Responda con un numero del 0 (muy mal) al 10 (muy bien).\n"
        "Responda STOP para darse de baja."
    )
    assert pain_sms.startswith("Demo Clinic: ¿Cuanta molestia fisica ha tenido hoy?")
    thanks = reply(client, "9")
    assert thanks.startswith("Demo Clinic: gracias, lo hemos recibido. Siguiente: ¿Cuanta molestia")
    clock.move_to(EXPIRES + timedelta(minutes=1))
    closed = reply(client, "4")
    assert closed == "Demo Clinic: esa pregunta ya esta cerrada y este numero no se registro. Gracias."
    for text in (mood_sms, pain_sms, thanks, closed):
        assert not ENGLISH.search(text.replace("Demo Clinic", "")), text
        assert not FORBIDDEN_IN_SMS.search(text), text
        assert not FORBIDDEN_IN_SPANISH_SMS.search(text), text
        assert set(text) <= GSM_7, set(text) - GSM_7
        assert segments(text)[0] <= 2
    assert [e.value for e in map(events.load_reply_rating, rating_jobs(redis_client))] == [9]


def test_the_number_never_reaches_the_logs(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, caplog: pytest.LogCaptureFixture
) -> None:
    booking = booked(app)
    ask(app, booking, "mood")
    tick(app)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    reply(client, "Eight? no: 8")  # not a number: kept for staff
    reply(client, "8")
    standard = set(vars(logging.makeLogRecord({})))
    logged = [
        f"{r.getMessage()} {[v for k, v in vars(r).items() if k not in standard and isinstance(v, str)]}"
        for r in caplog.records
    ]  # text only: a request's duration may well be 8 ms
    assert any("inbound sms" in line for line in logged)
    for line in logged:  # ids are hex: a lone 8 would be the number
        assert not re.search(r"(?<![0-9a-f-])8(?![0-9a-f-])", line), line
        assert "Eight" not in line


def test_a_rating_closed_in_checkins_closes_the_ask_and_its_unsent_sms(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = booked(app)
    mood = ask(app, booking, "mood")
    tick(app)
    clock.move_to(MONDAY_NOON + timedelta(hours=11))  # 23:00 in London: the reminder's SMS waits
    ask(app, booking, "mood", reminder=1, checkin_id=mood)
    tick(app)
    closed = events.dump_event(events.CheckinClosedEvent(booking_id=booking.id, checkin_id=mood))
    with app.app_context():
        assert jobs.handle_checkin_closed(closed) == "handled"
        assert jobs.handle_checkin_closed(closed) == "duplicate"
    rows = {m.step: m.status for m in messages(app, channel="sms") if m.step.startswith(f"checkin:{mood}:")}
    assert rows == {f"checkin:{mood}:0": "sent", f"checkin:{mood}:1": "cancelled"}
    (closed_ask,) = asks(app)
    assert (closed_ask.closed_at, closed_ask.reply_id) == (MONDAY_NOON + timedelta(hours=11), None)
    assert reply(client, "6") == (
        "Demo Clinic: that question has closed, so this number was not recorded. Thank you."
    )
    assert rating_jobs(redis_client) == []


def test_a_number_thanked_while_checkin_closed_was_in_flight_is_then_told_it_was_not_recorded(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    booking = booked(app)
    mood = ask(app, booking, "mood")
    tick(app)
    clock.shift(timedelta(hours=1))
    # The patient answered on the page (checkins published checkin.closed) and texts a number before notify
    # handled the closing: notify can only say "received", and checkins will not record it.
    assert reply(client, "5") == "Demo Clinic: thanks, we've received it."
    (payload,) = rating_jobs(redis_client)
    closed = events.dump_event(events.CheckinClosedEvent(booking_id=booking.id, checkin_id=mood))
    with app.app_context():
        assert jobs.handle_checkin_closed(closed) == "handled"
    tick(app)
    (told,) = [m for m in messages(app, channel="sms") if m.step == f"checkin:{mood}:not-recorded"]
    assert (told.status, told.recipient, told.body) == (
        SENT,
        booking.phone,
        "Demo Clinic: that question has closed, so this number was not recorded. Thank you.",
    )
    (row,) = reply_rows(app)
    assert (row.outcome, row.event_id) == ("rating-not-recorded", events.load_reply_rating(payload).event_id)
    (closed_ask,) = asks(app)
    assert closed_ask.reply_id == row.id
    # A redelivery of the closing (a new event id: a re-send after a lost acknowledgement) tells nothing twice.
    again = events.dump_event(events.CheckinClosedEvent(booking_id=booking.id, checkin_id=mood))
    with app.app_context():
        assert jobs.handle_checkin_closed(again) == "handled"
    tick(app)
    assert [m.step for m in messages(app, channel="sms") if m.step.endswith(":not-recorded")] == [told.step]


def test_a_check_in_closed_before_any_number_was_texted_sends_the_patient_nothing_more(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    booking = booked(app)
    mood = ask(app, booking, "mood")
    tick(app)
    closed = events.dump_event(events.CheckinClosedEvent(booking_id=booking.id, checkin_id=mood))
    with app.app_context():
        assert jobs.handle_checkin_closed(closed) == "handled"
    tick(app)
    steps = [m.step for m in messages(app, channel="sms") if m.step.startswith(f"checkin:{mood}:")]
    assert steps == [f"checkin:{mood}:0"]


def test_the_dispatcher_deletes_asks_past_expiry_and_grace_in_bounded_batches(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    booking = booked(app)
    old = []
    for rating in ("mood", "pain", "mood"):
        old.append(ask(app, booking, rating))
        clock.shift(timedelta(seconds=1))
    tick(app)
    assert (
        reply(client, "8")
        == "Demo Clinic: thanks, we've received it. Next: " + PAIN_QUESTION + " (the worst)."
    )
    # Past their expiry: a late number is still told the truth about asks sent within the lookback, so none of
    # them may be gone (the grace is that lookback, counted from the expiry, which comes after the ask).
    runtime = app.extensions["notify"]
    clock.move_to(MONDAY_NOON + ratings.LOOKBACK - timedelta(minutes=1))
    with app.app_context():
        assert dispatch.prune(runtime)["rating_asks"] == 0
    assert reply(client, "4") == (
        "Demo Clinic: that question has closed, so this number was not recorded. Thank you."
    )
    clock.move_to(EXPIRES + ratings.PRUNE_GRACE - timedelta(minutes=1))
    with app.app_context():
        assert dispatch.prune(runtime)["rating_asks"] == 0
    # A later check-in, still open, stays whatever happens to the old ones.
    later = uuid.uuid4()
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        ratings.record_ask(
            session,
            checkin_id=later,
            booking_id=booking.id,
            phone="+14155552671",
            rating="mood",
            expires_at=utcnow() + timedelta(days=1),
            now=utcnow(),
        )
    clock.move_to(EXPIRES + ratings.PRUNE_GRACE + timedelta(minutes=1))
    monkeypatch.setattr(dispatch, "PRUNE_BATCH", 2)
    with app.app_context(), runtime.db.transaction() as session:
        assert ratings.prune(session, now=utcnow(), limit=2) == 2  # one batch is bounded
    with app.app_context():
        assert dispatch.prune(runtime)["rating_asks"] == 1  # the pass takes batches until one is short
        assert dispatch.prune(runtime)["rating_asks"] == 0
    assert [a.checkin_id for a in asks(app)] == [later]
    assert not set(old) & {a.checkin_id for a in asks(app)}
    (row,) = [r for r in reply_rows(app) if r.outcome == "rating-noted"]  # the replies they pointed at stay
    assert row.rating == 8
