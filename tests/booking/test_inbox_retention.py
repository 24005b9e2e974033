"""The relay's prune cycle forgets handled events (notify's SMS replies) once no producer re-sends them."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.booking import jobs, relay
from services.booking.config import BookingConfig
from services.booking.models import ProcessedEvent
from shared import inbox
from shared.config import ConfigError, check, load
from shared.events import ATTENDANCE_CONFIRMED, SmsReplyEvent, dump_event
from shared.timeutil import utcnow
from tests.booking.conftest import MONDAY_NOON, STAFF
from tests.booking.factories import booking_body, make_setup
from tests.support.servers import wait_until

REPLIED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def reply(booking_id: str, *, at: datetime = REPLIED) -> dict[str, Any]:
    return dump_event(
        SmsReplyEvent(
            booking_id=uuid.UUID(booking_id), booking_version=1, meaning=ATTENDANCE_CONFIRMED, replied_at=at
        )
    )


def deliver(app: Flask, payload: dict[str, Any]) -> str:
    with app.app_context():
        return jobs.handle_sms_reply(payload)


def prune(app: Flask) -> int:
    """The inbox part of one relay prune, as its loop runs it every PRUNE_SECONDS."""
    days = app.extensions["booking"].config.inbox_retention_days
    return relay.prune_inbox(db=app.extensions["db"], retention_days=days)


def handled(app: Flask) -> list[uuid.UUID]:
    with app.extensions["db"].transaction() as session:
        return list(session.scalars(select(ProcessedEvent.event_id)))


def test_handled_replies_outlive_any_redelivery_then_go_in_bounded_batches(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = timedelta(days=app.extensions["booking"].config.inbox_retention_days)
    setup = make_setup(app)
    booked = [
        client.post(
            "/api/v1/bookings",
            json=booking_body(setup, f"2026-03-03T1{n}:00:00-05:00", email=f"p{n}@x.org"),
            headers=STAFF,
        ).json["id"]
        for n in range(3)
    ]
    replies = [reply(booking_id) for booking_id in booked]
    assert [deliver(app, payload) for payload in replies] == ["applied"] * 3
    clock.move_to(MONDAY_NOON + keep - timedelta(minutes=1))
    assert prune(app) == 0
    assert deliver(app, replies[0]) == "duplicate"  # a redelivery within the retention changes nothing

    clock.move_to(MONDAY_NOON + keep + timedelta(minutes=1))
    later = reply(booked[2], at=utcnow())
    assert deliver(app, later) == "kept"  # handled (and remembered): the visit was already confirmed
    monkeypatch.setattr(relay, "PRUNE_BATCH", 2)
    with app.extensions["db"].transaction() as session:
        assert inbox.prune(session, ProcessedEvent, before=utcnow() - keep, limit=2) == 2  # one bounded batch
    assert prune(app) == 1  # the pass takes batches until one is short
    assert handled(app) == [uuid.UUID(later["event_id"])]

    # Past the retention a redelivered reply is handled again, and that is harmless: the attendance it
    # confirmed is already recorded for that version, so it is kept as it was.
    before = client.get(f"/api/v1/bookings/{booked[0]}/attendance", headers=STAFF).json
    assert (before["state"], before["source"], before["at"]) == ("confirmed", "sms", REPLIED.isoformat())
    assert deliver(app, replies[0]) == "kept"
    assert client.get(f"/api/v1/bookings/{booked[0]}/attendance", headers=STAFF).json == before


def test_the_relay_loop_prunes_the_inbox(app: Flask, client: FlaskClient, clock: Any) -> None:
    booking_id = client.post(
        "/api/v1/bookings", json=booking_body(make_setup(app), "2026-03-03T10:00:00-05:00"), headers=STAFF
    ).json["id"]
    assert deliver(app, reply(booking_id)) == "applied"
    config = app.extensions["booking"].config
    clock.move_to(MONDAY_NOON + timedelta(days=config.inbox_retention_days, hours=1))
    stop = threading.Event()
    runtime = app.extensions["booking"]

    def once() -> None:
        relay.run_relay(
            db=runtime.db,
            redis=runtime.redis,
            poll_seconds=0.01,
            batch_size=10,
            retention=timedelta(days=config.outbox_retention_days),
            redeliver_seconds=60.0,
            inbox_retention_days=config.inbox_retention_days,
            stop=stop,
        )

    thread = threading.Thread(target=once)
    thread.start()
    try:
        wait_until(lambda: handled(app) == [], timeout=10, what="inbox pruned by the relay")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # Notify holds a reply until its visit (booked up to 730 days ahead) is over, and re-sends it
        # until acknowledged.
        ({"BOOKING_INBOX_RETENTION_DAYS": "30"}, "BOOKING_INBOX_RETENTION_DAYS must be at least 731"),
        ({"BOOKING_INBOX_RETENTION_DAYS": "forever"}, "BOOKING_INBOX_RETENTION_DAYS"),
    ],
)
def test_an_inbox_retention_below_its_floor_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check(load(BookingConfig, environ=env))
    assert load(BookingConfig, environ={"BOOKING_INBOX_RETENTION_DAYS": "731"}).inbox_retention_days == 731
