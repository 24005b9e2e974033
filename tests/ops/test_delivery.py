"""The delivery ledger: a lost event job or a lost acknowledgement is found from the databases and redelivered once."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from services.booking import relay
from services.booking.models import OutboxDelivery
from services.consult import publishing
from services.consult.models import LinksDelivery
from services.consult.models import ProcessedEvent as ConsultProcessed
from services.notify.models import Message
from services.notify.models import ProcessedEvent as NotifyProcessed
from shared import delivery, queues
from shared.db import get_db
from tests.booking.factories import booking_body, make_setup
from tests.ops.conftest import STAFF, Suite, samples, work


def _start(hour: int) -> str:
    day = datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=3)
    while day.weekday() > 4:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo("America/New_York")).isoformat()


def _count(app: object, model: type, *where: object) -> int:
    with app.app_context(), get_db().transaction() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _reconcile_booking(suite: Suite, grace: float) -> delivery.ReconcileReport:
    return relay.reconcile_once(
        db=suite.booking.extensions["db"], redis=suite.redis, grace=grace, bound=grace
    )


def _reconcile_consult(suite: Suite, grace: float) -> delivery.ReconcileReport:
    with suite.consult.app_context():
        return publishing.reconcile_links(
            db=get_db(),
            redis=suite.redis,
            signer=suite.consult.extensions["link_signer"],
            base_url="http://consult.test",
            grace=grace,
        )


def _book(suite: Suite) -> None:
    setup = make_setup(suite.booking)
    answer = suite.booking.test_client().post(
        "/api/v1/bookings", json=booking_body(setup, _start(10)), headers=STAFF
    )
    assert answer.status_code == 201, answer.json
    assert relay.relay_once(db=suite.booking.extensions["db"], redis=suite.redis) == 1


def test_acknowledged_events_settle_and_nothing_is_redelivered(suite: Suite) -> None:
    _book(suite)
    # notify, consult and checkins
    assert _count(suite.booking, OutboxDelivery, OutboxDelivery.outcome.is_(None)) == 3
    work(suite.consult, queues.CONSULT_QUEUE)
    work(suite.notify, queues.NOTIFY_QUEUE)
    work(suite.checkins, queues.CHECKINS_QUEUE)
    report = _reconcile_booking(suite, grace=0)
    assert report.acknowledged == 3
    assert report.redelivered == 0
    assert _count(suite.booking, OutboxDelivery, OutboxDelivery.outcome == delivery.HANDLED) == 3
    # consult's links event reached notify and was acknowledged to consult.
    assert _reconcile_consult(suite, grace=0).acknowledged == 1
    assert _count(suite.consult, LinksDelivery, LinksDelivery.outcome == delivery.HANDLED) == 1


def test_a_lost_event_job_is_redelivered_to_that_consumer_only(suite: Suite) -> None:
    _book(suite)
    # The notify job vanishes as it did when a worker listening on two queues was killed after taking it.
    suite.redis.delete(f"rq:queue:{queues.NOTIFY_QUEUE}")
    work(suite.consult, queues.CONSULT_QUEUE)
    work(suite.checkins, queues.CHECKINS_QUEUE)
    suite.redis.delete(f"rq:queue:{queues.NOTIFY_QUEUE}")  # and consult's links event with it
    early = _reconcile_booking(suite, grace=3600)
    # consult's and checkins' acknowledgements; nothing overdue yet
    assert (early.acknowledged, early.redelivered) == (2, 0)

    with suite.booking.app_context():
        body = suite.booking.test_client().get("/metrics").get_data(as_text=True)
    assert samples(body, "suite_events_unhandled", consumer="notify") == 0  # the bound has not passed

    assert _reconcile_booking(suite, grace=0).redelivered == 1  # to notify only
    jobs = queues.queue(queues.NOTIFY_QUEUE, suite.redis).get_job_ids()
    assert len(jobs) == 1
    assert jobs[0].endswith("-r1")
    assert _reconcile_consult(suite, grace=0).redelivered == 1
    work(suite.notify, queues.NOTIFY_QUEUE)
    assert _count(suite.notify, NotifyProcessed) == 2  # the booking event and the links event, once each
    assert _reconcile_booking(suite, grace=0).acknowledged == 1
    assert _reconcile_consult(suite, grace=0).acknowledged == 1
    assert _count(suite.booking, OutboxDelivery, OutboxDelivery.outcome.is_(None)) == 0
    assert _count(suite.consult, LinksDelivery, LinksDelivery.outcome.is_(None)) == 0


def test_a_lost_acknowledgement_costs_one_redelivery_that_changes_nothing(suite: Suite) -> None:
    _book(suite)
    work(suite.consult, queues.CONSULT_QUEUE)
    work(suite.notify, queues.NOTIFY_QUEUE)
    work(suite.checkins, queues.CHECKINS_QUEUE)
    messages = _count(suite.notify, Message)
    suite.redis.delete(delivery.ACKS_KEY.format(producer="booking"))
    report = _reconcile_booking(suite, grace=0)
    assert report.redelivered == 3
    assert report.backlog["notify"].overdue == 1  # counted before the redelivery settles it
    work(suite.consult, queues.CONSULT_QUEUE)
    work(suite.notify, queues.NOTIFY_QUEUE)
    work(suite.checkins, queues.CHECKINS_QUEUE)
    assert _reconcile_booking(suite, grace=0).acknowledged == 3
    assert _count(suite.booking, OutboxDelivery, OutboxDelivery.outcome.is_(None)) == 0
    assert _count(suite.notify, NotifyProcessed) == 2
    assert _count(suite.consult, ConsultProcessed) == 1
    assert _count(suite.notify, Message) == messages


def test_an_event_no_longer_held_is_settled_as_gone(suite: Suite) -> None:
    _book(suite)
    with suite.booking.app_context(), get_db().transaction() as session:
        from services.booking.models import OutboxEvent

        session.execute(OutboxEvent.__table__.delete())  # type: ignore[attr-defined]
    report = _reconcile_booking(suite, grace=0)
    assert report.redelivered == 0
    assert _count(suite.booking, OutboxDelivery, OutboxDelivery.outcome == delivery.GONE) == 3


def test_redelivery_backs_off() -> None:
    assert [delivery.redelivery_delay(45, n) for n in (1, 2, 3)] == [45, 90, 180]
    assert delivery.redelivery_delay(45, 20) == delivery.MAX_REDELIVERY_DELAY
