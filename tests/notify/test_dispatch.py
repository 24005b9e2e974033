"""The dispatcher: only what is due goes to Redis, and whatever Redis loses is rebuilt from the database."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

from services.notify.models import FAILED, PLANNED, QUEUED, SENT
from services.notify.runtime import worker_queues
from shared.queues import queue
from tests.notify.conftest import MONDAY_NOON, by_step, deliver, dispatch, messages, outbox, tick, work
from tests.notify.factories import Booking
from tests.support.servers import RedisServer

START = MONDAY_NOON + timedelta(days=3, hours=3)


def test_redis_holds_nothing_for_future_reminders(
    app: Flask, redis_client: Redis, clock: time_machine.Coordinates
) -> None:
    for n in range(200):
        deliver(app, Booking(start=START + timedelta(hours=n)).confirmed(at=MONDAY_NOON))
    work(app)  # the confirmations
    redis_client.flushall()
    assert dispatch(app).enqueued == 0
    assert len(messages(app, status=PLANNED)) == 200 * 4  # the 24 h reminders and join links
    assert redis_client.dbsize() == 0  # none of them is in Redis


def test_jobs_lost_with_redis_are_queued_again_from_the_database(
    app: Flask, redis_server: RedisServer, redis_client: Redis, clock: time_machine.Coordinates
) -> None:
    deliver(app, Booking(start=START).confirmed(at=MONDAY_NOON))
    work(app)
    clock.move_to(START - timedelta(hours=24))
    assert dispatch(app).enqueued == 2
    redis_server.stop()  # Redis dies with the jobs; it had no persistence
    redis_server.start()
    assert by_step(app)[("reminder-24h", "sms")].status == QUEUED
    assert dispatch(app).requeued == 0  # too early to call a queued message lost

    clock.shift(timedelta(seconds=31))
    report = dispatch(app)
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
    dispatch(app)
    clock.shift(timedelta(minutes=2))  # no worker ran: the jobs wait in Redis
    report = dispatch(app)
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
        dispatch(app)
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
    assert dispatch(app).expired == 2
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
        reports.append(dispatch(app))

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
