"""Booking events in, consultations and published join links out: idempotent, order-proof, loss-proof."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
import redis
import time_machine
from flask import Flask
from sqlalchemy import func, select, update

from services.consult import publishing, sweep
from services.consult.models import Consultation, LocalVideoRoom, Room
from shared import events
from shared.db import get_db
from shared.links import JOIN, join_url
from shared.queues import NOTIFY_QUEUE, publish, queue
from shared.worker import make_worker
from tests.consult.conftest import (
    START,
    booking_event,
    booking_id_of,
    deliver,
    links_ready_jobs,
    signer_of,
    token_for,
)
from tests.support.servers import RedisServer


def _consultation(app: Flask, booking_id: uuid.UUID) -> Consultation | None:
    with app.app_context(), get_db().transaction() as session:
        return session.get(Consultation, booking_id)


def _count(app: Flask, model: Any, *where: Any) -> int:
    with app.app_context(), get_db().transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _open_room(app: Flask, token: str) -> dict[str, Any]:
    response = app.test_client().post(f"/api/v1/join/{token}/access", json={})
    assert response.status_code == 200, response.json
    return dict(response.json)


def test_confirmed_video_booking_records_the_window_and_publishes_both_links(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event(correlation_id="corr-abc")
    booking_id = booking_id_of(payload)

    assert deliver(app, payload) == "recorded"

    consultation = _consultation(app, booking_id)
    assert consultation is not None
    assert consultation.version == 1
    assert consultation.status == "confirmed"
    assert consultation.opens_at == START - timedelta(minutes=15)
    assert consultation.closes_at == START + timedelta(minutes=45 + 30)
    assert consultation.links_published_at is not None

    (published,) = links_ready_jobs(redis_client)
    event = events.load_links_ready(published)
    assert event.booking_id == booking_id
    assert event.booking_version == 1
    assert event.opens_at == consultation.opens_at
    assert event.closes_at == consultation.closes_at
    assert event.correlation_id == "corr-abc"
    assert event.event_id == consultation.links_event_id
    # The links carry the consultation's stored secret (shared.links.join_token).
    assert event.patient_join_url == join_url("http://consult.test", token_for(app, booking_id))
    for url, participant in ((event.patient_join_url, "patient"), (event.provider_join_url, "provider")):
        assert url.startswith("http://consult.test/join/")
        claims = signer_of(app).verify(url.rsplit("/", 1)[1], purpose=JOIN)
        assert claims.subject == str(booking_id)
        assert claims.version == 1
        assert claims.extra == {"p": participant, "k": consultation.link_secret}
    # The job names the event, never the patient.
    (job,) = _notify_jobs(redis_client)
    assert job.description == f"consult.links_ready {event.event_id}"
    assert "Jordan" not in str(job.description)


def _notify_jobs(connection: redis.Redis) -> list[Any]:
    return list(queue(NOTIFY_QUEUE, connection).get_jobs())


def test_a_redelivered_event_changes_nothing(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event()
    booking_id = booking_id_of(payload)
    deliver(app, payload)
    before = _consultation(app, booking_id)

    clock.shift(timedelta(minutes=5))
    assert deliver(app, payload) == "duplicate"

    after = _consultation(app, booking_id)
    assert after is not None
    assert before is not None
    assert (after.version, after.links_event_id, after.updated_at, after.links_published_at) == (
        before.version,
        before.links_event_id,
        before.updated_at,
        before.links_published_at,
    )
    assert len(links_ready_jobs(redis_client)) == 1


def test_in_person_bookings_get_no_room(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event(mode=events.IN_PERSON)
    assert deliver(app, payload) == "not-video"
    assert _consultation(app, booking_id_of(payload)) is None
    assert links_ready_jobs(redis_client) == []


def test_events_out_of_order_keep_the_latest_version(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    booking_id = uuid.uuid4()
    later = START + timedelta(days=1)
    confirmed = booking_event(booking_id=booking_id, version=1)
    moved = booking_event(events.BOOKING_RESCHEDULED, booking_id=booking_id, version=2, start=later)
    cancelled = booking_event(events.BOOKING_CANCELLED, booking_id=booking_id, version=3, start=later)

    assert deliver(app, moved) == "recorded"
    assert deliver(app, confirmed) == "stale"
    consultation = _consultation(app, booking_id)
    assert consultation is not None
    assert (consultation.version, consultation.start_at) == (2, later)
    # Only the links of version 2 went out; version 1's never will.
    assert [events.load_links_ready(p).booking_version for p in links_ready_jobs(redis_client)] == [2]

    assert deliver(app, cancelled) == "cancelled"
    assert (
        deliver(app, booking_event(events.BOOKING_RESCHEDULED, booking_id=booking_id, version=2)) == "stale"
    )
    consultation = _consultation(app, booking_id)
    assert consultation is not None
    assert (consultation.version, consultation.status) == (3, "cancelled")
    assert len(links_ready_jobs(redis_client)) == 1


def test_a_cancellation_seen_first_is_kept(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    booking_id = uuid.uuid4()
    assert (
        deliver(app, booking_event(events.BOOKING_CANCELLED, booking_id=booking_id, version=2)) == "cancelled"
    )
    assert deliver(app, booking_event(booking_id=booking_id, version=1)) == "stale"
    consultation = _consultation(app, booking_id)
    assert consultation is not None
    assert consultation.status == "cancelled"
    assert links_ready_jobs(redis_client) == []


def test_reschedule_issues_new_links_and_completes_the_old_room(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event()
    booking_id = booking_id_of(payload)
    deliver(app, payload)
    clock.move_to(START - timedelta(minutes=10))
    old_token = token_for(app, booking_id, version=1)
    grant = _open_room(app, old_token)

    later = START + timedelta(days=2)
    assert deliver(
        app, booking_event(events.BOOKING_RESCHEDULED, booking_id=booking_id, version=2, start=later)
    ) == ("recorded")

    # The version-1 room was completed by the handler itself, on the provider and in our records.
    assert (
        _count(
            app,
            LocalVideoRoom,
            LocalVideoRoom.unique_name == grant["room_name"],
            LocalVideoRoom.status == "completed",
        )
        == 1
    )
    assert (
        _count(app, Room, Room.booking_id == booking_id, Room.version == 1, Room.status == "completed") == 1
    )
    # New links for version 2 were published; the old link is refused.
    versions = [events.load_links_ready(p).booking_version for p in links_ready_jobs(redis_client)]
    assert versions == [1, 2]
    refused = app.test_client().post(f"/api/v1/join/{old_token}/access", json={})
    assert refused.status_code == 410
    assert refused.json["type"].endswith("/link-replaced")


def test_cancel_completes_the_room_in_progress(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event()
    booking_id = booking_id_of(payload)
    deliver(app, payload)
    clock.move_to(START + timedelta(minutes=5))
    token = token_for(app, booking_id)
    grant = _open_room(app, token)

    deliver(app, booking_event(events.BOOKING_CANCELLED, booking_id=booking_id, version=2))

    assert (
        _count(
            app,
            LocalVideoRoom,
            LocalVideoRoom.unique_name == grant["room_name"],
            LocalVideoRoom.status == "completed",
        )
        == 1
    )
    assert _count(app, Room, Room.booking_id == booking_id, Room.status == "in-progress") == 0
    refused = app.test_client().post(f"/api/v1/join/{token}/access", json={})
    assert refused.status_code == 410
    assert refused.json["type"].endswith("/consultation-cancelled")
    assert len(links_ready_jobs(redis_client)) == 1


def test_a_publish_that_failed_after_the_commit_is_sent_by_the_redelivery(
    app: Flask, redis_server: RedisServer, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event()
    booking_id = booking_id_of(payload)
    redis_server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            deliver(app, payload)
    finally:
        redis_server.start()
    consultation = _consultation(app, booking_id)
    assert consultation is not None
    assert consultation.links_published_at is None  # committed, not yet sent

    # RQ retries the job: the inbox says "already handled", and still the links go out.
    assert deliver(app, payload) == "duplicate"
    (published,) = links_ready_jobs(redis_server.client())
    assert events.load_links_ready(published).event_id == consultation.links_event_id
    consultation = _consultation(app, booking_id)
    assert consultation is not None
    assert consultation.links_published_at is not None


def test_the_sweeper_sends_links_no_delivery_sent(
    app: Flask, redis_server: RedisServer, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event()
    redis_server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            deliver(app, payload)
    finally:
        redis_server.start()

    with app.app_context():
        result = sweep.sweep_once(
            db=get_db(),
            redis=app.extensions["redis"],
            video=app.extensions["consult"].video,
            signer=signer_of(app),
            base_url="http://consult.test",
        )
    assert result.links_published == 1
    assert len(links_ready_jobs(redis_server.client())) == 1
    # A second sweep (or a late redelivery) sends nothing more.
    assert deliver(app, payload) == "duplicate"
    assert len(links_ready_jobs(redis_server.client())) == 1


def test_links_whose_window_has_closed_are_not_sent(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event(start=START - timedelta(hours=5))
    assert deliver(app, payload) == "recorded"
    assert links_ready_jobs(redis_client) == []


def test_through_the_queue_and_a_real_worker(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    payload = booking_event()
    publish(redis_client, payload)  # as the booking relay does: one job per consumer
    with app.app_context():
        make_worker(["consult"]).work(burst=True)
    assert _consultation(app, booking_id_of(payload)) is not None
    assert len(links_ready_jobs(redis_client)) == 1


def test_concurrent_versions_of_one_booking_end_at_the_highest(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    booking_id = uuid.uuid4()
    deliver(app, booking_event(booking_id=booking_id, version=1))
    payloads = [
        booking_event(
            events.BOOKING_RESCHEDULED, booking_id=booking_id, version=v, start=START + timedelta(hours=v)
        )
        for v in range(2, 8)
    ]
    errors: list[BaseException] = []

    def run(item: dict[str, Any]) -> None:
        try:
            deliver(app, item)
        except Exception as exc:  # noqa: BLE001 - any failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in reversed(payloads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    consultation = _consultation(app, booking_id)
    assert consultation is not None
    assert consultation.version == 7
    assert consultation.start_at == START + timedelta(hours=7)


def test_links_published_before_join_link_secrets_are_sent_again_with_one(
    app: Flask, redis_client: redis.Redis, clock: time_machine.Coordinates
) -> None:
    """After the upgrade: a consultation the previous release recorded (no secret) gets one, and new links."""
    payload = booking_event()
    booking_id = booking_id_of(payload)
    deliver(app, payload)
    (first,) = links_ready_jobs(redis_client)
    with app.app_context(), get_db().transaction() as session:
        session.execute(update(Consultation).values(link_secret=None))
    old_style = join_token_without_secret(app, booking_id)
    assert app.test_client().get(f"/join/{old_style}").status_code == 404

    with app.app_context():
        sent = publishing.publish_pending_links(
            db=get_db(), redis=redis_client, signer=signer_of(app), base_url="http://consult.test"
        )
    assert sent == 1
    again = links_ready_jobs(redis_client)[-1]
    assert again["event_id"] != first["event_id"]  # a new event: notify stores the new links
    consultation = _consultation(app, booking_id)
    assert consultation is not None
    assert consultation.link_secret
    assert consultation.links_published_at is not None
    token = again["patient_join_url"].rsplit("/", 1)[1]
    assert signer_of(app).verify(token, purpose=JOIN).extra["k"] == consultation.link_secret
    assert app.test_client().get(f"/join/{token}").status_code == 200
    with app.app_context():  # and nothing more to send
        assert (
            publishing.publish_pending_links(
                db=get_db(), redis=redis_client, signer=signer_of(app), base_url="http://consult.test"
            )
            == 0
        )


def join_token_without_secret(app: Flask, booking_id: uuid.UUID) -> str:
    """A join link as the previous release minted it."""
    return signer_of(app).sign(
        purpose=JOIN,
        subject=str(booking_id),
        version=1,
        expires_at=START + timedelta(hours=3),
        extra={"p": "patient"},
    )
