"""Booking events in, check-ins planned; due check-ins out as events for notify: idempotent and loss-proof."""

from __future__ import annotations

import uuid
from datetime import timedelta

import redis
import time_machine
from flask import Flask

from services.checkins.models import CANCELLED, COMPLETED, PLANNED, SENT, Answer, CheckinDelivery
from shared import events
from shared.db import get_db
from shared.delivery import HANDLED
from shared.queues import publish
from tests.checkins.conftest import (
    FIRST,
    NOW,
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


def test_a_first_infusion_plans_questionnaires_before_and_after_and_ratings_the_day_after(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    assert deliver(app, booking_event()) == "recorded"
    end = FIRST + SESSION
    assert sorted(_steps(app, status=PLANNED)) == sorted(
        [
            ("phq9-before-first", FIRST - timedelta(hours=48)),
            ("gad7-before-first", FIRST - timedelta(hours=48)),
            ("mood-day-after", end + timedelta(days=1)),
            ("pain-day-after", end + timedelta(days=1)),
            ("phq9-after-last", end + timedelta(days=7)),
            ("gad7-after-last", end + timedelta(days=7)),
        ]
    )


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
    assert len(checkins(app, status=CANCELLED)) == 6


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
        # No instrument, question, answer or score travels: only ids, the link and its expiry.
        assert set(payload) == {
            "event_id", "type", "schema_version", "occurred_at", "correlation_id",
            "booking_id", "booking_version", "checkin_id", "checkin_url", "expires_at", "reminder",
        }  # fmt: skip
    assert {c.status for c in checkins(app) if c.plan_step.endswith("before-first")} == {SENT}
    # A second round sends nothing new.
    assert schedule(app)["published"] == 0
    assert len(queued(redis_client, event_type=events.CHECKIN_REQUESTED)) == 2


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
    clock.move_to(end + timedelta(days=1, minutes=1))
    schedule(app)
    clock.shift(timedelta(hours=25))
    assert schedule(app)["reminded"] == 2  # mood and pain
    reminders = [p for p in queued(redis_client, event_type=events.CHECKIN_REQUESTED) if p["reminder"] == 1]
    assert len(reminders) == 2
    clock.shift(timedelta(hours=12))
    schedule(app)
    assert {c.status for c in checkins(app) if c.plan_step.endswith("day-after")} == {"expired"}


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
    # The worker acknowledged it to the reply's producer.
    assert redis_client.lrange("suite:acks:reply", 0, -1) == [
        f"checkins reply.rating {reply['event_id']}".encode()
    ]
    # A second reply to a completed check-in changes nothing.
    assert deliver(app, events.dump_event(events.ReplyRatingEvent(checkin_id=mood.id, value=2))) == "not-open"
    assert (
        deliver(app, events.dump_event(events.ReplyRatingEvent(checkin_id=uuid.uuid4(), value=2)))
        == "unknown"
    )
