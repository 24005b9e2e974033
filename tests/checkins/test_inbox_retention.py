"""The scheduler forgets handled events (booking's sessions, notify's ratings) once no producer re-sends them."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from services.checkins import scheduler
from services.checkins.config import CheckinsConfig
from services.checkins.models import CheckinDelivery, ProcessedEvent, SessionChange
from services.checkins.runtime import get_runtime
from shared import events, inbox
from shared.config import ConfigError, check, load
from shared.delivery import HANDLED
from shared.timeutil import utcnow
from tests.checkins.conftest import FIRST, NOW, SESSION, booking_event, checkins, deliver, schedule
from tests.support.servers import wait_until


def prune(app: Flask) -> dict[str, int]:
    """One prune of the scheduler, as its loop runs it every PRUNE_SECONDS."""
    with app.app_context():
        return scheduler.prune(get_runtime().publisher)


def handled(app: Flask) -> list[uuid.UUID]:
    with app.extensions["db"].transaction() as session:
        return list(session.scalars(select(ProcessedEvent.event_id)))


def changes(app: Flask) -> list[uuid.UUID]:
    with app.extensions["db"].transaction() as session:
        return sorted(session.scalars(select(SessionChange.event_id)))


def states(app: Flask) -> list[tuple[str, str, str]]:
    return [(c.plan_step, c.status, str(c.due_at)) for c in checkins(app)]


def test_handled_events_outlive_any_redelivery_then_go_in_bounded_batches_and_a_late_one_is_harmless(
    app: Flask, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = timedelta(days=app.extensions["checkins"].config.inbox_retention_days)
    sessions = [booking_event(start=FIRST + timedelta(days=7 * n)) for n in range(3)]
    assert [deliver(app, payload) for payload in sessions] == ["recorded"] * 3
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    (mood,) = checkins(app, plan_step="mood-day-after", due_at=FIRST + SESSION + timedelta(days=1))
    rating = events.dump_event(events.ReplyRatingEvent(checkin_id=mood.id, value=7))
    assert deliver(app, rating) == "recorded"
    rated_at = utcnow()

    clock.move_to(NOW + keep - timedelta(minutes=1))
    assert prune(app)["processed_events"] == 0
    assert deliver(app, sessions[0]) == "duplicate"  # a redelivery within the retention changes nothing

    clock.move_to(NOW + keep + timedelta(minutes=1))
    monkeypatch.setattr(scheduler, "PRUNE_BATCH", 2)
    with app.extensions["db"].transaction() as session:
        assert inbox.prune(session, ProcessedEvent, before=utcnow() - keep, limit=2) == 2  # one bounded batch
    assert prune(app)["processed_events"] == 1  # the pass takes batches until one is short
    assert handled(app) == [uuid.UUID(rating["event_id"])]  # handled later, so kept longer

    # Past the retention a redelivered event is handled again, harmlessly: the session copy already holds
    # that version (stale), its history row is not added twice, and a rated check-in is no longer open.
    before, history = states(app), changes(app)
    assert len(history) == 3
    assert deliver(app, sessions[0]) == "stale"
    assert changes(app) == history
    clock.move_to(rated_at + keep + timedelta(minutes=1))
    assert prune(app)["processed_events"] == 1  # the rating (the redelivery, handled later, stays)
    assert deliver(app, rating) == "not-open"
    assert states(app) == before
    (mood,) = checkins(app, id=mood.id)
    assert mood.score == 7


def test_the_scheduler_loop_prunes_the_inbox(app: Flask, clock: time_machine.Coordinates) -> None:
    assert deliver(app, booking_event()) == "recorded"
    clock.move_to(NOW + timedelta(days=app.extensions["checkins"].config.inbox_retention_days, hours=1))
    stop = threading.Event()
    with app.app_context():
        publisher = get_runtime().publisher
    thread = threading.Thread(
        target=scheduler.run_scheduler, kwargs={"p": publisher, "interval": 0.05, "stop": stop}
    )
    thread.start()
    try:
        wait_until(lambda: handled(app) == [], timeout=10, what="inbox pruned by the scheduler")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # Booking re-sends what its outbox holds; notify holds a rating reply until its visit is over.
        ({"CHECKINS_INBOX_RETENTION_DAYS": "365"}, "CHECKINS_INBOX_RETENTION_DAYS must be at least 731"),
        ({"CHECKINS_INBOX_RETENTION_DAYS": "-1"}, "CHECKINS_INBOX_RETENTION_DAYS must be at least 731"),
    ],
)
def test_an_inbox_retention_below_its_floor_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check(load(CheckinsConfig, environ=env))
    assert load(CheckinsConfig, environ={"CHECKINS_INBOX_RETENTION_DAYS": "731"}).inbox_retention_days == 731


def test_settled_deliveries_go_with_the_inbox_retention_and_unsettled_ones_stay(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    keep = timedelta(days=app.extensions["checkins"].config.inbox_retention_days)
    sent = utcnow()
    rows = {name: uuid.uuid4() for name in ("settled", "unsettled", "recent")}
    with app.extensions["db"].transaction() as session:
        for name, event_id in rows.items():
            first = sent if name != "recent" else sent + timedelta(days=30)
            settled = name != "unsettled"
            session.add(
                CheckinDelivery(
                    event_id=event_id,
                    consumer="notify",
                    event_type="checkin.due",
                    first_sent_at=first,
                    last_sent_at=first,
                    settled_at=first if settled else None,
                    outcome=HANDLED if settled else None,
                )
            )
    clock.move_to(sent + keep + timedelta(days=1))
    assert prune(app)["event_deliveries"] == 1
    with app.extensions["db"].transaction() as session:
        left = set(session.scalars(select(CheckinDelivery.event_id)))
    assert left == {rows["unsettled"], rows["recent"]}  # an unsettled one is still redelivered
