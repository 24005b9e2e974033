"""The sweeper's retention: finished visits and handled booking events go once nothing can need them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select

from services.consult import sweep
from services.consult.config import ConsultConfig
from services.consult.models import Consultation, LinksDelivery, ProcessedEvent, Room
from shared import inbox
from shared.config import ConfigError, check, load
from shared.timeutil import utcnow
from tests.consult.conftest import (
    NOON,
    STAFF,
    START,
    booking_event,
    booking_id_of,
    deliver,
    links_ready_jobs,
    token_for,
)


def prune(app: Flask) -> dict[str, int]:
    """One prune of the sweeper, as its loop runs it every PRUNE_SECONDS."""
    config = app.extensions["consult"].config
    return sweep.prune(
        db=app.extensions["db"],
        inbox_retention_days=config.inbox_retention_days,
        visit_retention_days=config.visit_retention_days,
    )


def sweep_once(app: Flask) -> sweep.SweepResult:
    runtime = app.extensions["consult"]
    return sweep.sweep_once(
        db=runtime.db,
        redis=runtime.redis,
        video=runtime.video,
        signer=runtime.signer,
        base_url=runtime.config.consult_public_url,
    )


def consultations(app: Flask) -> set[uuid.UUID]:
    with app.extensions["db"].transaction() as session:
        return set(session.scalars(select(Consultation.booking_id)))


def count(app: Flask, model: Any) -> int:
    with app.extensions["db"].transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_finished_visit_goes_with_its_rooms_after_its_retention_once_its_room_is_completed(
    app: Flask, redis_client: Any, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = timedelta(days=app.extensions["consult"].config.visit_retention_days)
    joined = booking_event()
    deliver(app, joined)
    others = [booking_event(start=START + timedelta(days=1, hours=n)) for n in range(3)]
    for payload in others:
        assert deliver(app, payload) == "recorded"
    clock.move_to(START - timedelta(minutes=5))
    opened = app.test_client().post(f"/api/v1/join/{token_for(app, booking_id_of(joined))}/access", json={})
    assert opened.status_code == 200
    assert count(app, LinksDelivery) == 4  # every visit's links went to notify, none acknowledged yet

    # Just inside the retention of the last visit: it stays, the two before it go.
    last_closes = START + timedelta(days=1, hours=2, minutes=45 + 30)
    clock.move_to(last_closes + keep - timedelta(minutes=1))
    assert prune(app) == {"consultations": 2, "event_deliveries": 0, "processed_events": 0}
    assert consultations(app) == {booking_id_of(others[2]), booking_id_of(joined)}
    # The joined visit's room was never completed (no sweep ran): the visit stays until it is.
    clock.move_to(last_closes + keep + timedelta(minutes=1))
    recent = booking_event(start=utcnow() + timedelta(days=2))
    assert deliver(app, recent) == "recorded"
    assert prune(app)["consultations"] == 1
    assert consultations(app) == {booking_id_of(joined), booking_id_of(recent)}
    assert count(app, Room) == 1

    result = sweep_once(app)  # completes the room; the closed visits' links are settled as gone
    assert result.rooms_completed == 1
    assert prune(app) == {"consultations": 1, "event_deliveries": 4, "processed_events": 0}
    assert consultations(app) == {booking_id_of(recent)}
    assert count(app, Room) == 0
    assert count(app, LinksDelivery) == 1  # the recent visit's, still waiting for notify
    gone = app.test_client().get(f"/api/v1/consultations/{booking_id_of(joined)}", headers=STAFF)
    assert gone.status_code == 404
    assert count(app, ProcessedEvent) == 5  # handled events outlive the visits (their own retention)


def test_visits_go_in_bounded_batches(
    app: Flask, redis_client: Any, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = timedelta(days=app.extensions["consult"].config.visit_retention_days)
    for n in range(5):
        deliver(app, booking_event(start=START + timedelta(hours=n)))
    clock.move_to(START + keep + timedelta(days=1))
    monkeypatch.setattr(sweep, "PRUNE_BATCH", 2)
    with app.extensions["db"].transaction() as session:
        assert sweep.prune_visits(session, now=utcnow(), keep=keep, limit=2) == 2  # one batch is bounded
    assert prune(app)["consultations"] == 3  # the pass takes batches until one is short
    assert consultations(app) == set()


def test_handled_events_outlive_any_redelivery_and_a_later_one_sends_nothing(
    app: Flask, redis_client: Any, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = timedelta(days=app.extensions["consult"].config.inbox_retention_days)
    payloads = [booking_event(start=START + timedelta(hours=n)) for n in range(3)]
    for payload in payloads:
        assert deliver(app, payload) == "recorded"
    clock.move_to(NOON + keep - timedelta(minutes=1))
    assert prune(app)["processed_events"] == 0
    assert deliver(app, payloads[0]) == "duplicate"  # a replayed event still changes nothing

    clock.move_to(NOON + keep + timedelta(minutes=1))
    later = booking_event(start=utcnow() + timedelta(days=3))
    assert deliver(app, later) == "recorded"
    monkeypatch.setattr(sweep, "PRUNE_BATCH", 2)
    with app.extensions["db"].transaction() as session:
        assert inbox.prune(session, ProcessedEvent, before=utcnow() - keep, limit=2) == 2
    assert prune(app)["processed_events"] == 1
    with app.extensions["db"].transaction() as session:
        assert list(session.scalars(select(ProcessedEvent.event_id))) == [uuid.UUID(later["event_id"])]

    # Past both retentions the visit and its event id are gone. A redelivery then records the visit again,
    # closed: no join link goes to notify and no room opens, and the next prune after the visit retention
    # deletes it again. Harmless, not silently dropped.
    sent = len(links_ready_jobs(redis_client))
    assert booking_id_of(payloads[0]) not in consultations(app)
    assert deliver(app, payloads[0]) == "recorded"
    assert len(links_ready_jobs(redis_client)) == sent
    status = app.test_client().get(f"/api/v1/consultations/{booking_id_of(payloads[0])}", headers=STAFF)
    assert status.json["window"]["state"] == "closed"
    assert status.json["rooms"] == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # Booking re-sends what its outbox holds, and a visit is booked up to 730 days ahead.
        ({"CONSULT_INBOX_RETENTION_DAYS": "30"}, "CONSULT_INBOX_RETENTION_DAYS must be at least 731"),
        # A manage link asks for the visit's join link until 7 days after it.
        (
            {"CONSULT_VISIT_RETENTION_DAYS": "6"},
            r"CONSULT_VISIT_RETENTION_DAYS must be at least 7 \(a manage link works 7 days after the visit\)",
        ),
        ({"CONSULT_VISIT_RETENTION_DAYS": "a while"}, "CONSULT_VISIT_RETENTION_DAYS"),
    ],
)
def test_retention_below_its_floor_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check(load(ConsultConfig, environ=env))


def test_the_floors_themselves_are_accepted() -> None:
    config = load(
        ConsultConfig, environ={"CONSULT_INBOX_RETENTION_DAYS": "731", "CONSULT_VISIT_RETENTION_DAYS": "7"}
    )
    check(config)
    assert (config.inbox_retention_days, config.visit_retention_days) == (731, 7)
