"""The outbox: events commit with the booking and reach Redis through the relay, even after Redis was down."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from redis.exceptions import RedisError
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import event, select

from services.booking import relay
from services.booking.models import OutboxDelivery, OutboxEvent
from shared import queues
from shared.db import get_db
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup
from tests.support.servers import RedisServer, wait_until


def _rows(app: Flask) -> list[OutboxEvent]:
    with app.app_context(), get_db().transaction() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)))


def _queued(connection: redis.Redis, name: str) -> list[Job]:
    queue = queues.queue(name, connection)
    return [Job.fetch(job_id, connection=connection, serializer=JSONSerializer) for job_id in queue.job_ids]


def _relay(app: Flask, connection: redis.Redis) -> int:
    return relay.relay_once(db=app.extensions["db"], redis=connection, batch_size=50)


def test_relay_moves_events_to_every_consumer(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, clock: object
) -> None:
    setup = make_setup(app)
    booking = client.post(
        "/api/v1/bookings", json=booking_body(setup, "2026-03-03T10:00:00-05:00"), headers=STAFF
    ).json
    client.post(f"/api/v1/bookings/{booking['id']}/cancel", json={}, headers=STAFF)
    assert [r.published_at for r in _rows(app)] == [None, None]

    assert _relay(app, redis_client) == 2
    assert _relay(app, redis_client) == 0
    rows = _rows(app)
    assert all(r.published_at is not None for r in rows)

    for name, handler in (
        (queues.NOTIFY_QUEUE, "services.notify.jobs.handle_booking_event"),
        (queues.CONSULT_QUEUE, "services.consult.jobs.handle_booking_event"),
    ):
        jobs = _queued(redis_client, name)
        assert [j.func_name for j in jobs] == [handler, handler]
        assert [j.args[0]["type"] for j in jobs] == ["booking.confirmed", "booking.cancelled"]
        assert [j.args[0]["event_id"] for j in jobs] == [str(r.event_id) for r in rows]
        # Job descriptions show in dashboards and logs: ids only, never the payload with contact details.
        assert all("@" not in (j.description or "") and "+1" not in (j.description or "") for j in jobs)


def test_bookings_succeed_while_redis_is_down_and_events_follow(
    app: Flask, client: FlaskClient, redis_server: RedisServer, redis_client: redis.Redis, clock: object
) -> None:
    setup = make_setup(app)
    redis_server.stop()
    try:
        created = client.post(
            "/api/v1/bookings", json=booking_body(setup, "2026-03-03T10:00:00-05:00"), headers=STAFF
        )
        assert created.status_code == 201
        moved = client.post(
            f"/api/v1/bookings/{created.json['id']}/reschedule",
            json={"start": "2026-03-03T11:00:00-05:00"},
            headers=STAFF,
        )
        assert moved.status_code == 200
        with pytest.raises(RedisError):
            _relay(app, redis.Redis.from_url(redis_server.url, socket_connect_timeout=0.5))
        assert [r.published_at for r in _rows(app)] == [None, None]
    finally:
        redis_server.start()

    back = redis_server.client()
    assert _relay(app, back) == 2
    jobs = _queued(back, queues.NOTIFY_QUEUE)
    assert [j.args[0]["booking"]["version"] for j in jobs] == [1, 2]


def test_relay_loop_rides_out_an_outage(
    app: Flask, client: FlaskClient, redis_server: RedisServer, redis_client: redis.Redis, clock: object
) -> None:
    setup = make_setup(app)
    stop = threading.Event()
    loop_client = redis.Redis.from_url(redis_server.url, socket_connect_timeout=0.5, socket_timeout=1)
    thread = threading.Thread(
        target=relay.run_relay,
        kwargs={
            "db": app.extensions["db"],
            "redis": loop_client,
            "poll_seconds": 0.05,
            "batch_size": 10,
            "retention": timedelta(days=1),
            "redeliver_seconds": 45.0,
            "inbox_retention_days": 800,
            "stop": stop,
        },
    )
    thread.start()
    try:
        redis_server.stop()
        for hour in ("10", "11", "12"):
            response = client.post(
                "/api/v1/bookings",
                json=booking_body(setup, f"2026-03-03T{hour}:00:00-05:00", email=f"h{hour}@example.com"),
                headers=STAFF,
            )
            assert response.status_code == 201
        assert all(r.published_at is None for r in _rows(app))
        redis_server.start()
        wait_until(lambda: all(r.published_at is not None for r in _rows(app)), timeout=30, what="relay")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(_queued(redis_server.client(), queues.NOTIFY_QUEUE)) == 3


def test_publishing_an_event_twice_queues_it_once(redis_client: redis.Redis) -> None:
    event: dict[str, Any] = {"type": "booking.confirmed", "event_id": "7d0f8f0e-42c6-4ab8-9c7a-d2f6d3bd0c11"}
    first = queues.publish(redis_client, event)
    second = queues.publish(redis_client, event)
    assert (
        first
        == second
        == [
            "notify-7d0f8f0e-42c6-4ab8-9c7a-d2f6d3bd0c11",
            "consult-7d0f8f0e-42c6-4ab8-9c7a-d2f6d3bd0c11",
            "checkins-7d0f8f0e-42c6-4ab8-9c7a-d2f6d3bd0c11",
        ]
    )
    for name in (queues.NOTIFY_QUEUE, queues.CONSULT_QUEUE, queues.CHECKINS_QUEUE):
        assert queues.queue(name, redis_client).count == 1


def test_prune_keeps_unpublished_events(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, clock: Any
) -> None:
    setup = make_setup(app)
    client.post("/api/v1/bookings", json=booking_body(setup, "2026-03-03T10:00:00-05:00"), headers=STAFF)
    _relay(app, redis_client)
    client.post(
        "/api/v1/bookings",
        json=booking_body(setup, "2026-03-03T14:00:00-05:00", email="b@x.org"),
        headers=STAFF,
    )
    clock.shift(timedelta(days=20))
    assert relay.prune(db=app.extensions["db"], retention=timedelta(days=14)) == 1
    (left,) = _rows(app)
    assert left.published_at is None
    assert relay.pending_count(app.extensions["db"]) == 1


def test_prune_deletes_in_bounded_batches(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(app)
    for hour in range(9, 14):
        body = booking_body(setup, f"2026-03-03T{hour:02d}:00:00-05:00", email=f"p{hour}@x.org")
        assert client.post("/api/v1/bookings", json=body, headers=STAFF).status_code == 201
    _relay(app, redis_client)
    deleted: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM OUTBOX"):
            deleted.append(cursor.rowcount)

    engine = app.extensions["db"].engine
    event.listen(engine, "after_cursor_execute", count)
    monkeypatch.setattr(relay, "PRUNE_BATCH", 2)
    clock.shift(timedelta(days=20))
    try:
        assert relay.prune(db=app.extensions["db"], retention=timedelta(days=14)) == 5
    finally:
        event.remove(engine, "after_cursor_execute", count)
    assert deleted == [2, 2, 1]  # one transaction per batch, none holding more than its limit
    assert _rows(app) == []
    with app.app_context(), get_db().transaction() as session:
        assert session.scalars(select(OutboxDelivery)).all() == []
