"""Booking events in, check-ins planned; due check-ins out as events for notify: idempotent and loss-proof."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import redis
import time_machine
from flask import Flask
from sqlalchemy import select

from services.checkins.models import (
    CANCELLED,
    COMPLETED,
    PLANNED,
    SENT,
    Answer,
    CheckinDelivery,
    Patient,
    SessionChange,
)
from shared import events
from shared.db import get_db
from shared.delivery import HANDLED
from shared.queues import publish
from tests.checkins.conftest import (
    FIRST,
    NOW,
    PATIENT,
    SESSION,
    booking_event,
    checkins,
    deliver,
    queued,
    schedule,
    work,
)


def _steps(app: Flask, **where: object) -> list[tuple[str, object]]:
    return [(c.plan_step, c.due_at) for c in checkins(app, **where)]


def test_a_first_infusion_plans_questionnaires_before_and_after_and_ratings_for_three_days_after(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    assert deliver(app, booking_event()) == "recorded"
    end = FIRST + SESSION
    day = timedelta(days=1)
    assert sorted(_steps(app, status=PLANNED)) == sorted(
        [
            ("phq9-before-first", FIRST - timedelta(hours=48)),
            ("gad7-before-first", FIRST - timedelta(hours=48)),
            ("mood-day-after", end + day),
            ("pain-day-after", end + day),
            ("mood-day-after-2", end + 2 * day),
            ("pain-day-after-2", end + 2 * day),
            ("mood-day-after-3", end + 3 * day),
            ("pain-day-after-3", end + 3 * day),
            ("phq9-after-last", end + timedelta(days=7)),
            ("gad7-after-last", end + timedelta(days=7)),
        ]
    )
    # A day's rating closes as the next day's opens: one open at a time.
    (first,) = checkins(app, plan_step="mood-day-after")
    assert first.expires_at == end + 2 * day


def test_weekly_phq9_between_the_course_and_its_booster(app: Flask, clock: time_machine.Coordinates) -> None:
    second = FIRST + timedelta(days=7)
    deliver(app, booking_event(course=(1, 2)))
    deliver(app, booking_event(start=second, course=(2, 2)))
    assert not [c for c in checkins(app) if c.plan_step.startswith("phq9-weekly")]
    # A booster four weeks after the course's last session: a PHQ-9 each week that closes before it.
    booster = second + timedelta(days=28)
    deliver(app, booking_event(start=booster, course=(3, 2)))
    weekly = checkins(app, status=PLANNED, instrument="phq9")
    end = second + SESSION
    assert [(c.plan_step, c.due_at) for c in weekly if "weekly" in c.plan_step] == [
        ("phq9-weekly-before-booster", end + timedelta(days=7)),
        ("phq9-weekly-before-booster-2", end + timedelta(days=14)),
        ("phq9-weekly-before-booster-3", end + timedelta(days=21)),
    ]
    assert all(c.expires_at <= booster for c in weekly if "weekly" in c.plan_step)
    # "After the last" now follows the booster.
    (after_last,) = [c for c in weekly if c.plan_step == "phq9-after-last"]
    assert after_last.due_at == booster + SESSION + timedelta(days=7)


def test_a_later_infusion_moves_the_after_last_questionnaires_and_adds_its_own_ratings(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    second = FIRST + timedelta(days=7)
    deliver(app, booking_event(start=second))
    planned = checkins(app, status=PLANNED)
    assert len([c for c in planned if c.plan_step == "mood-day-after"]) == 2
    after_last = [c for c in planned if c.plan_step.endswith("after-last")]
    assert {c.due_at for c in after_last} == {second + SESSION + timedelta(days=7)}
    # The first session's after-last questionnaires are no longer called for.
    assert {c.plan_step for c in checkins(app, status=CANCELLED)} == {"phq9-after-last", "gad7-after-last"}
    # Before-first stays with the first session.
    assert {c.due_at for c in planned if c.plan_step.endswith("before-first")} == {
        FIRST - timedelta(hours=48)
    }


def test_reschedule_moves_and_cancel_cancels_what_is_still_planned(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking_id = uuid.uuid4()
    deliver(app, booking_event(booking_id=booking_id))
    moved = FIRST + timedelta(days=2)
    deliver(app, booking_event(events.BOOKING_RESCHEDULED, booking_id=booking_id, version=2, start=moved))
    mood = checkins(app, plan_step="mood-day-after")
    assert [(c.due_at, c.booking_version) for c in mood] == [(moved + SESSION + timedelta(days=1), 2)]
    deliver(app, booking_event(events.BOOKING_CANCELLED, booking_id=booking_id, version=3, start=moved))
    assert checkins(app, status=PLANNED) == []
    assert len(checkins(app, status=CANCELLED)) == 10


def test_duplicate_and_stale_events_change_nothing(app: Flask, clock: time_machine.Coordinates) -> None:
    booking_id = uuid.uuid4()
    payload = booking_event(booking_id=booking_id, version=2)
    assert deliver(app, payload) == "recorded"
    before = _steps(app)
    assert deliver(app, payload) == "duplicate"
    assert (
        deliver(app, booking_event(booking_id=booking_id, version=1, start=FIRST + timedelta(days=3)))
        == "stale"
    )
    assert _steps(app) == before


def test_other_appointment_types_plan_nothing(app: Flask, clock: time_machine.Coordinates) -> None:
    assert deliver(app, booking_event(type_slug="video-consultation")) == "no-plan"
    assert checkins(app) == []


def test_a_booking_made_late_sends_the_before_first_questionnaires_at_once(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    soon = NOW + timedelta(hours=20)  # inside the 48 h before the session
    deliver(app, booking_event(start=soon))
    assert {c.due_at for c in checkins(app) if c.plan_step.endswith("before-first")} == {NOW}


def test_due_check_ins_go_to_notify_as_events_without_health_details(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    clock.move_to(FIRST - timedelta(hours=47))
    counts = schedule(app)
    assert counts["due"] == 2
    assert counts["published"] == 2
    sent = queued(redis_client, event_type=events.CHECKIN_REQUESTED)
    assert len(sent) == 2
    for payload in sent:
        event = events.load_checkin_requested(payload)
        assert event.checkin_url.startswith("http://checkins.test/c/")
        # No question, answer or score travels: only ids, the link, its expiry and, for a 0-10 rating, its key.
        assert set(payload) == {
            "event_id", "type", "schema_version", "occurred_at", "correlation_id",
            "booking_id", "booking_version", "checkin_id", "checkin_url", "expires_at", "reminder", "rating",
        }  # fmt: skip
        assert event.rating is None  # a questionnaire goes as a link only
    assert {c.status for c in checkins(app) if c.plan_step.endswith("before-first")} == {SENT}
    # A second round sends nothing new.
    assert schedule(app)["published"] == 0
    assert len(queued(redis_client, event_type=events.CHECKIN_REQUESTED)) == 2
    # The day after the session, the single ratings say which they are, so notify can ask them by SMS.
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    ratings = [events.load_checkin_requested(p).rating for p in queued(redis_client)]
    assert sorted(r for r in ratings if r) == ["mood", "pain"]
    # A payload from before the field still loads (optional within version 1).
    old = {k: v for k, v in queued(redis_client)[0].items() if k != "rating"}
    assert events.load_checkin_requested(old).rating is None


def test_unacknowledged_check_in_events_are_redelivered_and_acknowledged_ones_settle(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    clock.move_to(FIRST - timedelta(hours=47))
    schedule(app)
    redis_client.flushall()  # the jobs are lost
    clock.shift(timedelta(seconds=60))
    assert schedule(app)["redelivered"] == 2
    assert len(queued(redis_client, event_type=events.CHECKIN_REQUESTED)) == 2
    for payload in queued(redis_client, event_type=events.CHECKIN_REQUESTED):
        redis_client.rpush("suite:acks:checkin", f"notify {payload['type']} {payload['event_id']}")
    schedule(app)
    with app.app_context(), get_db().transaction() as session:
        assert {d.outcome for d in session.query(CheckinDelivery)} == {HANDLED}


def test_an_unanswered_check_in_gets_one_reminder_then_expires(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    end = FIRST + SESSION
    clock.move_to(end + timedelta(days=7, minutes=1))
    schedule(app)
    clock.shift(timedelta(hours=25))
    assert schedule(app)["reminded"] == 2  # PHQ-9 and GAD-7 after the last session
    reminders = [p for p in queued(redis_client, event_type=events.CHECKIN_REQUESTED) if p["reminder"] == 1]
    assert len(reminders) == 2
    clock.shift(timedelta(days=6))
    schedule(app)
    assert {c.status for c in checkins(app) if c.plan_step.endswith("after-last")} == {"expired"}


def test_a_daily_rating_gets_no_reminder_the_next_day_asks_again(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    clock.shift(timedelta(hours=23))
    assert schedule(app)["reminded"] == 0
    clock.shift(timedelta(hours=1))
    assert schedule(app)["due"] == 2  # the second day's mood and pain
    assert {c.status for c in checkins(app) if c.plan_step.endswith("day-after")} == {"expired"}


def test_booking_events_build_the_session_history_and_the_patients_language(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking_id = uuid.uuid4()
    deliver(app, booking_event(booking_id=booking_id, language="es"))
    moved = FIRST + timedelta(days=1)
    escort = events.EscortRef(
        id=uuid.uuid4(),
        first_name="Sam",
        phone="+14155550123",
        patient_first_name="Jordan",
        agreed_at=NOW,
        pickup_at=moved + timedelta(hours=2),
    )
    deliver(
        app,
        booking_event(
            events.BOOKING_RESCHEDULED,
            booking_id=booking_id,
            version=2,
            start=moved,
            previous=FIRST,
            escort=escort,
            language="es",
        ),
    )
    confirmed = dataclasses.replace(escort, confirmed_at=NOW, confirmed_how="sms")
    escort_event = booking_event(
        events.BOOKING_ESCORT_CHANGED,
        booking_id=booking_id,
        version=3,
        start=moved,
        escort=confirmed,
        language="es",
    )
    assert deliver(app, escort_event) == "recorded"
    assert deliver(app, escort_event) == "duplicate"
    cancelled = booking_event(
        events.BOOKING_CANCELLED,
        booking_id=booking_id,
        version=4,
        start=moved,
        escort=confirmed,
        language="es",
    )
    deliver(app, cancelled)
    with app.app_context(), get_db().transaction() as session:
        assert session.get(Patient, PATIENT).language == "es"
        rows = session.scalars(select(SessionChange).order_by(SessionChange.version)).all()
        assert [(r.kind, r.version, r.previous_start, r.escort, r.escort_confirmed_how) for r in rows] == [
            ("booked", 1, None, "none", None),
            ("rescheduled", 2, FIRST, "given", None),
            ("escort", 3, None, "confirmed", "sms"),
            ("cancelled", 4, None, "confirmed", "sms"),
        ]
        assert rows[-1].cancelled_by == "patient"
    # Only whether there is an escort: never who they are.
    with app.app_context(), get_db().engine.connect() as connection:
        dumped = str(connection.exec_driver_sql("SELECT * FROM session_changes").fetchall())
    assert "Sam" not in dumped
    assert "4155550123" not in dumped


def test_a_rating_reply_arrives_as_an_event_through_the_queue(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    (mood,) = checkins(app, plan_step="mood-day-after")
    reply = events.dump_event(events.ReplyRatingEvent(checkin_id=mood.id, value=7))
    publish(redis_client, reply)  # as notify's inbound SMS will
    work(app)
    (mood,) = checkins(app, plan_step="mood-day-after")
    assert (mood.status, mood.score) == (COMPLETED, 7)
    with app.app_context(), get_db().transaction() as session:
        assert [(a.value, a.source) for a in session.query(Answer)] == [(7, "sms")]
    # The worker acknowledged it to the reply's producer (notify publishes ``reply.*``).
    assert redis_client.lrange("suite:acks:notify", 0, -1) == [
        f"checkins reply.rating {reply['event_id']}".encode()
    ]
    # A second reply to a completed check-in changes nothing.
    assert deliver(app, events.dump_event(events.ReplyRatingEvent(checkin_id=mood.id, value=2))) == "not-open"
    assert (
        deliver(app, events.dump_event(events.ReplyRatingEvent(checkin_id=uuid.uuid4(), value=2)))
        == "unknown"
    )
