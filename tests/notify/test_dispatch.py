"""The dispatcher: only what is due goes to Redis, and whatever Redis loses is rebuilt from the database."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select, text

from services.notify import dispatch, sending
from services.notify.models import (
    FAILED,
    PLANNED,
    QUEUED,
    SENT,
    ProcessedEvent,
    RatingAsk,
    ReplyDelivery,
    SmsReply,
)
from services.notify.replies import publishing
from services.notify.runtime import worker_queues
from shared import delivery, inbox
from shared.events import NOTIFY_SMS_REPLY
from shared.queues import queue
from shared.timeutil import utcnow
from tests.notify.conftest import MONDAY_NOON, by_step, deliver, messages, outbox, tick, work
from tests.notify.conftest import dispatch as dispatch_pass
from tests.notify.factories import Booking
from tests.notify.replies.test_replies import reminded, reply, reply_rows
from tests.support.servers import RedisServer

START = MONDAY_NOON + timedelta(days=3, hours=3)
STRANGER = "+14155550100"  # a number notify never wrote to


def test_redis_holds_nothing_for_future_reminders(
    app: Flask, redis_client: Redis, clock: time_machine.Coordinates
) -> None:
    for n in range(200):
        deliver(app, Booking(start=START + timedelta(hours=n)).confirmed(at=MONDAY_NOON))
    work(app)  # the confirmations
    redis_client.flushall()
    assert dispatch_pass(app).enqueued == 0
    assert len(messages(app, status=PLANNED)) == 200 * 4  # the 24 h reminders and join links
    assert redis_client.dbsize() == 0  # none of them is in Redis


def test_jobs_lost_with_redis_are_queued_again_from_the_database(
    app: Flask, redis_server: RedisServer, redis_client: Redis, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    clock.move_to(START - timedelta(hours=24))
    assert dispatch_pass(app).enqueued == 2
    redis_server.stop()  # Redis dies with the jobs; it had no persistence
    redis_server.start()
    assert by_step(app)[("reminder-24h", "sms")].status == QUEUED
    assert dispatch_pass(app).requeued == 0  # too early to call a queued message lost

    clock.shift(timedelta(seconds=31))
    report = dispatch_pass(app)
    assert report.requeued == 2
    assert report.enqueued == 2
    work(app)
    assert by_step(app)[("reminder-24h", "sms")].status == SENT
    assert len([m for m in outbox(app, "sms") if "tomorrow" in m.text]) == 1
    # Jobs that are still there are not doubled.
    clock.shift(timedelta(minutes=5))
    assert tick(app).requeued == 0
    assert len(outbox(app)) == 4


def test_a_queued_job_that_still_exists_is_left_alone(app: Flask, clock: time_machine.Coordinates) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    clock.move_to(START - timedelta(hours=24))
    dispatch_pass(app)
    clock.shift(timedelta(minutes=2))  # no worker ran: the jobs wait in Redis
    report = dispatch_pass(app)
    assert report.requeued == 0
    assert report.enqueued == 0
    work(app)
    assert len(outbox(app)) == 4


def test_redis_down_when_dispatching_leaves_everything_planned(
    app: Flask, redis_server: RedisServer, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    clock.move_to(START - timedelta(hours=24))
    redis_server.stop()
    with pytest.raises(RedisError):
        dispatch_pass(app)
    assert by_step(app)[("reminder-24h", "sms")].status == PLANNED
    redis_server.start()
    assert tick(app).enqueued == 2
    assert by_step(app)[("reminder-24h", "sms")].status == SENT


def test_redis_down_does_not_hold_a_confirmation_its_event_job_sends(
    app: Flask, redis_server: RedisServer, clock: time_machine.Coordinates
) -> None:
    redis_server.stop()
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))  # sent by the event job: no Redis needed
    assert by_step(app)[("confirmation", "sms")].status == SENT
    assert len(outbox(app)) == 2
    redis_server.start()
    tick(app)
    assert len(outbox(app)) == 2  # nothing twice


def test_a_claim_failing_inside_the_event_transaction_keeps_the_plan_and_sends_the_old_way(
    app: Flask, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database error in the event's own claim: on PostgreSQL it aborts the transaction but for its savepoint.
    claim = sending.claim
    calls: list[bool] = []

    def failing_first(**kwargs: Any) -> list[sending.Prepared]:
        calls.append(kwargs.get("held") is not None)
        if len(calls) == 1:
            kwargs["session"].execute(text("SELECT * FROM no_such_table"))
        return claim(**kwargs)

    monkeypatch.setattr(sending, "claim", failing_first)
    booking = Booking(start=START)
    assert deliver(app, booking.confirmed(at=MONDAY_NOON)) == "handled"
    assert calls == [True, False]  # in the event's transaction, then claimed again in its own
    plan = by_step(app)
    assert plan[("confirmation", "sms")].status == plan[("confirmation", "email")].status == SENT
    assert plan[("reminder-24h", "sms")].status == PLANNED  # the rest of the plan stands
    assert len(outbox(app)) == 2
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(ProcessedEvent)) == 1
    tick(app)
    assert len(outbox(app)) == 2  # nothing twice


def test_redis_down_after_an_event_is_planned_loses_no_confirmation(
    make_app: Callable[..., Flask], redis_server: RedisServer, clock: time_machine.Coordinates
) -> None:
    # One call at a time: the confirmation's two rows are more than one round, so they go as a send job.
    app = make_app(send_concurrency=1, send_batch_size=2)
    redis_server.stop()
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))  # planned; the fast path cannot queue
    assert by_step(app)[("confirmation", "sms")].status == PLANNED
    redis_server.start()
    tick(app)
    assert by_step(app)[("confirmation", "sms")].status == SENT
    assert len(outbox(app)) == 2


def test_a_join_link_that_never_comes_is_a_recorded_failure(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=START)
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    clock.move_to(START - timedelta(hours=1))
    tick(app)
    assert by_step(app)[("join-1h", "sms")].status == PLANNED  # waiting for the link
    clock.move_to(booking.end + timedelta(minutes=1))
    assert dispatch_pass(app).expired == 2
    row = by_step(app)[("join-1h", "sms")]
    assert row.status == FAILED
    assert row.reason == "the join link never arrived"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_concurrent_dispatchers_never_queue_a_message_twice(
    app: Flask, redis_client: Redis, clock: time_machine.Coordinates, no_send_at_once: None
) -> None:
    for n in range(120):
        deliver(app, Booking(start=START + timedelta(minutes=n)).confirmed(at=MONDAY_NOON))
    redis_client.flushall()
    clock.move_to(START - timedelta(hours=24) + timedelta(hours=3))  # 2 h of 24 h reminders are due
    barrier = threading.Barrier(3)
    reports = []

    def run() -> None:
        barrier.wait()
        reports.append(dispatch_pass(app))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queued = Counter()
    for name in worker_queues():
        for job in queue(name, redis_client).get_jobs():
            queued.update(job.args[0])
    assert sum(r.enqueued for r in reports) == len(queued)
    assert set(queued.values()) == {1}
    # The confirmations (their jobs flushed away) and the reminders due so far: each in exactly one job.
    assert set(queued) == {m.id for m in messages(app, status=QUEUED)}
    assert {m.step for m in messages(app, status=QUEUED)} == {"confirmation", "reminder-24h"}


def test_replies_stay_while_staff_may_need_them_and_while_their_event_is_owed(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, redis_client: Redis
) -> None:
    runtime = app.extensions["notify"]
    keep = timedelta(days=runtime.config.reply_retention_days)
    booking = Booking(start=START)
    reminded(app, clock, booking)
    received = utcnow()
    assert "is confirmed" in reply(client, "C")  # its event goes to booking, not acknowledged yet
    assert "reply C to confirm" in reply(client, "Running late, is that ok?")  # kept for staff to read
    assert "could not match" in reply(client, "C", phone=STRANGER)  # about no booking
    sids = {r.outcome: r.message_sid for r in reply_rows(app)}

    clock.move_to(received + keep - timedelta(minutes=1))
    assert reply(client, "C", sid=sids["unmatched"], phone=STRANGER) != ""  # a retry: the same answer, once
    assert prune(app)["sms_replies"] == 0
    assert len(reply_rows(app)) == 3
    # Past the retention from its receipt, the reply about no booking goes; the booking's stay while staff may
    # still look at the visit (the retention counts from its end).
    clock.move_to(received + keep + timedelta(minutes=1))
    assert prune(app)["sms_replies"] == 1
    assert [r.outcome for r in reply_rows(app)] == ["confirmed", "kept"]
    clock.move_to(booking.end + keep - timedelta(minutes=1))
    assert prune(app)["sms_replies"] == 0
    # Past it, the kept text goes; the confirmation stays while booking has not acknowledged its event.
    clock.move_to(booking.end + keep + timedelta(minutes=1))
    assert prune(app)["sms_replies"] == 1
    (row,) = reply_rows(app)
    assert row.outcome == "confirmed"
    assert [d.outcome for d in deliveries(app)] == [None]
    delivery.acknowledge(
        redis_client, consumer="booking", event_type=NOTIFY_SMS_REPLY, event_id=str(row.event_id)
    )
    with app.app_context():
        publishing.relay_once(runtime)
    assert [d.outcome for d in deliveries(app)] == [delivery.HANDLED]
    assert prune(app) == {"rating_asks": 0, "sms_replies": 1, "event_deliveries": 1, "processed_events": 0}
    assert reply_rows(app) == []
    assert deliveries(app) == []


def test_the_reply_prune_keeps_unpublished_events_and_answers_to_asks_and_goes_in_bounded_batches(
    app: Flask, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = app.extensions["notify"]
    keep = timedelta(days=runtime.config.reply_retention_days)
    with app.app_context(), runtime.db.transaction() as session:
        for n in range(5):
            session.add(
                SmsReply(message_sid=f"SM-old-{n}", phone=STRANGER, intent="other", outcome="unmatched")
            )
        session.add(  # its notify.sms_reply is not published yet (Redis was away): never deleted before it is
            SmsReply(
                message_sid="SM-unpublished",
                phone=STRANGER,
                intent="confirm",
                outcome="confirmed",
                booking_id=uuid.uuid4(),
                booking_version=1,
                event_id=uuid.uuid4(),
                meaning="attendance_confirmed",
            )
        )
        answered = SmsReply(
            message_sid="SM-answered", phone=STRANGER, intent="rating", outcome="rating-noted"
        )
        session.add(answered)
        session.flush()
        session.add(  # an ask still held points at the number that answered it
            RatingAsk(
                checkin_id=uuid.uuid4(),
                booking_id=uuid.uuid4(),
                phone=STRANGER,
                rating="mood",
                asked_at=utcnow(),
                expires_at=utcnow() + keep * 2,
                closed_at=utcnow(),
                reply_id=answered.id,
            )
        )
    clock.move_to(MONDAY_NOON + keep + timedelta(days=1))
    monkeypatch.setattr(dispatch, "PRUNE_BATCH", 2)
    with app.app_context(), runtime.db.transaction() as session:
        assert publishing.prune(session, now=utcnow(), keep=keep, limit=2) == 2  # one batch is bounded
    assert prune(app)["sms_replies"] == 3  # the pass takes batches until one is short
    assert prune(app)["sms_replies"] == 0
    assert sorted(r.message_sid for r in reply_rows(app)) == ["SM-answered", "SM-unpublished"]


def test_handled_event_ids_outlive_any_redelivery_then_go_in_bounded_batches(
    app: Flask, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = app.extensions["notify"]
    keep = timedelta(days=runtime.config.inbox_retention_days)
    events = [Booking(start=START + timedelta(hours=n)).confirmed(at=MONDAY_NOON) for n in range(3)]
    for event in events:
        assert deliver(app, event) == "handled"
    clock.move_to(MONDAY_NOON + keep - timedelta(minutes=1))
    assert prune(app)["processed_events"] == 0
    assert deliver(app, events[0]) == "duplicate"  # a replayed event still changes nothing
    clock.move_to(MONDAY_NOON + keep + timedelta(minutes=1))
    later = Booking(start=utcnow() + timedelta(days=3)).confirmed(at=utcnow())
    assert deliver(app, later) == "handled"
    monkeypatch.setattr(dispatch, "PRUNE_BATCH", 2)
    with app.app_context(), runtime.db.transaction() as session:
        assert inbox.prune(session, ProcessedEvent, before=utcnow() - keep, limit=2) == 2
    assert prune(app)["processed_events"] == 1
    with app.app_context(), runtime.db.transaction() as session:
        assert list(session.scalars(select(ProcessedEvent.event_id))) == [uuid.UUID(later["event_id"])]


def prune(app: Flask) -> dict[str, int]:
    """One prune of the dispatcher, as its loop runs it every PRUNE_SECONDS."""
    with app.app_context():
        return dispatch.prune(app.extensions["notify"])


def deliveries(app: Flask) -> list[ReplyDelivery]:
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        return list(session.scalars(select(ReplyDelivery)))
