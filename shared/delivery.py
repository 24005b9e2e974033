"""The delivery ledger: which consumer handled which published event, and re-delivery of what is missing."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Index, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from shared import killpoints
from shared.db import GUID, Database, UTCDateTime, dialect_insert, rowcount
from shared.metrics import EVENTS_REDELIVERED
from shared.queues import ROUTES, publish
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

HANDLED = "handled"  # the consumer acknowledged it
GONE = "gone"  # the producer no longer holds it (pruned, or superseded by a newer version)
ACKS_KEY = "suite:acks:{producer}"
STATUS_KEY = "suite:deliveries"  # what ``suite status`` shows, rewritten by every reconciling pass
MAX_REDELIVERY_DELAY = 3600.0

PayloadLoader = Callable[[Session, list[uuid.UUID]], dict[uuid.UUID, dict[str, Any]]]


class DeliveryMixin:
    """Columns of a producer's ``event_deliveries`` table (mix into the service's own model)."""

    event_id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    consumer: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    first_sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sends: Mapped[int] = mapped_column(Integer, default=1)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # The reconciler's question: which unsettled deliveries are oldest? The prune's: which are old?
        table = cls.__tablename__  # type: ignore[attr-defined]
        return (
            Index(f"ix_{table}_unsettled", "outcome", "last_sent_at"),
            Index(f"ix_{table}_first_sent_at", "first_sent_at"),
        )


# Prefixes that name what an event is about, not who publishes it (notify publishes what a reply meant).
_PUBLISHED_BY = {"reply": "notify", "course": "booking"}


def producer_of(event_type: str) -> str:
    """The service that publishes ``event_type`` (its prefix: ``booking.confirmed`` -> ``booking``)."""
    prefix = event_type.split(".", 1)[0]
    return _PUBLISHED_BY.get(prefix, prefix)


def consumers_of(producer: str) -> tuple[str, ...]:
    """Every consumer of some event ``producer`` publishes."""
    return tuple(
        sorted(
            {
                r.consumer
                for event_type, routes in ROUTES.items()
                if producer_of(event_type) == producer
                for r in routes
            }
        )
    )


def record_sent(
    session: Session, model: type[DeliveryMixin], sent: list[tuple[uuid.UUID, str]], now: datetime
) -> None:
    """Add a ledger row per consumer of each (event id, type) just published; existing rows stay."""
    rows = [
        {
            "event_id": event_id,
            "consumer": route.consumer,
            "event_type": event_type,
            "first_sent_at": now,
            "last_sent_at": now,
            "sends": 1,
        }
        for event_id, event_type in sent
        for route in ROUTES.get(event_type, ())
    ]
    if rows:
        session.execute(dialect_insert(session, model).on_conflict_do_nothing(), rows)


def acknowledge(connection: Redis, *, consumer: str, event_type: str, event_id: str) -> None:
    """Tell the producer that ``consumer`` has handled the event (after the handler's commit)."""
    key = ACKS_KEY.format(producer=producer_of(event_type))
    try:
        connection.rpush(key, f"{consumer} {event_type} {event_id}")
    except RedisError as exc:
        # The event is redelivered after the grace period and acknowledged then.
        log.warning("acknowledgement not sent", extra={"event_id": event_id, "error": type(exc).__name__})


def apply_acks(
    session: Session,
    model: type[DeliveryMixin],
    connection: Redis,
    *,
    producer: str,
    now: datetime,
    limit: int = 1000,
) -> int:
    """Move up to ``limit`` acknowledgements from Redis into the ledger; return how many were taken."""
    entries: list[bytes] = connection.lpop(ACKS_KEY.format(producer=producer), limit) or []  # type: ignore[assignment]
    rows = {}
    for entry in entries:
        consumer, event_type, event_id = _parse_ack(entry)
        if consumer:
            rows[(event_id, consumer)] = {
                "event_id": event_id,
                "consumer": consumer,
                "event_type": event_type,
                "first_sent_at": now,
                "last_sent_at": now,
                "sends": 1,
                "settled_at": now,
                "outcome": HANDLED,
            }
    if rows:
        # An acknowledgement may overtake its ledger row (another relay's publish not yet committed): upsert.
        stmt = dialect_insert(session, model)
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_id", "consumer"],
            set_={"settled_at": now, "outcome": HANDLED},
            where=model.__table__.c.outcome.is_(None),  # type: ignore[attr-defined]
        )
        session.execute(stmt, list(rows.values()))
    return len(entries)


def _parse_ack(entry: bytes | str) -> tuple[str, str, uuid.UUID | None]:
    text = entry.decode() if isinstance(entry, bytes) else entry
    parts = text.split(" ")
    try:
        return parts[0], parts[1], uuid.UUID(parts[2])
    except (IndexError, ValueError):
        log.warning("malformed acknowledgement dropped")
        return "", "", None


def redelivery_delay(grace: float, sends: int) -> float:
    """Seconds after the ``sends``-th send before the next: the grace, doubling, at most an hour."""
    return float(min(grace * 2 ** max(sends - 1, 0), MAX_REDELIVERY_DELAY))


def redeliver_overdue(
    session: Session,
    model: type[DeliveryMixin],
    connection: Redis,
    *,
    grace: float,
    now: datetime,
    payloads: PayloadLoader,
    limit: int = 500,
) -> int:
    """Publish again, to its consumer only, each delivery unacknowledged past its delay; return how many."""
    query = (
        select(model)
        .where(model.outcome.is_(None), model.last_sent_at < now - timedelta(seconds=grace))
        .order_by(model.last_sent_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    due = [
        row
        for row in session.scalars(query)
        if row.last_sent_at <= now - timedelta(seconds=redelivery_delay(grace, row.sends))
    ]
    if not due:
        return 0
    bodies = payloads(session, sorted({row.event_id for row in due}))
    pipe = connection.pipeline(transaction=False)
    for row in due:
        body = bodies.get(row.event_id)
        if body is None:
            row.outcome, row.settled_at = GONE, now
            log.warning("event no longer held; not redelivered", extra={"event_id": str(row.event_id)})
            continue
        publish(connection, body, pipeline=pipe, only=row.consumer, attempt=row.sends)
        row.sends += 1
        row.last_sent_at = now
        EVENTS_REDELIVERED.labels(producer_of(row.event_type), row.consumer).inc()
    pipe.execute()
    killpoints.reached("redeliver.published")
    redelivered = [row for row in due if row.outcome is None]
    if redelivered:
        log.warning("events redelivered", extra={"count": len(redelivered)})
    return len(redelivered)


@dataclass
class Backlog:
    """Deliveries of one consumer not acknowledged within the bound."""

    consumer: str
    overdue: int = 0
    oldest_age_seconds: float = 0.0


def overdue(
    session: Session, model: type[DeliveryMixin], *, bound: float, now: datetime
) -> dict[str, Backlog]:
    """Per consumer of this producer: deliveries unacknowledged ``bound`` seconds after their first send."""
    found = {route.consumer: Backlog(route.consumer) for routes in ROUTES.values() for route in routes}
    rows = session.execute(
        select(model.consumer, func.count(), func.min(model.first_sent_at))
        .where(model.outcome.is_(None), model.first_sent_at < now - timedelta(seconds=bound))
        .group_by(model.consumer)
    ).all()
    for consumer, count, oldest in rows:
        found[consumer] = Backlog(consumer, int(count), max(0.0, (now - oldest).total_seconds()))
    return found


@dataclass
class ReconcileReport:
    """What one reconciling pass did."""

    acknowledged: int = 0
    redelivered: int = 0
    backlog: dict[str, Backlog] = field(default_factory=dict)


def reconcile_once(
    *,
    db: Database,
    connection: Redis,
    model: type[DeliveryMixin],
    producer: str,
    grace: float,
    bound: float,
    payloads: PayloadLoader,
) -> ReconcileReport:
    """Take acknowledgements, redeliver what is overdue, and publish the backlog for ``suite status``."""
    report = ReconcileReport()
    now = utcnow()
    with db.transaction() as session:
        report.acknowledged = apply_acks(session, model, connection, producer=producer, now=now)
    with db.transaction() as session:
        report.redelivered = redeliver_overdue(
            session, model, connection, grace=grace, now=now, payloads=payloads
        )
    with db.transaction() as session:
        backlog = overdue(session, model, bound=bound, now=now)
    report.backlog = {c: backlog.get(c, Backlog(c)) for c in consumers_of(producer)}
    connection.hset(
        STATUS_KEY,
        mapping={
            f"{producer}>{c}": json.dumps({**vars(b), "at": time.time()}) for c, b in report.backlog.items()
        },
    )
    return report


def backlog_metrics(
    db: Database, model: type[DeliveryMixin], *, producer: str, bound: float
) -> dict[tuple[str, str], list[tuple[dict[str, str], float]]]:
    """The ledger's overdue deliveries as gauges, for the producer's ``/metrics`` (read at scrape time)."""
    with db.transaction() as session:
        backlog = overdue(session, model, bound=bound, now=utcnow())
    counts, ages = [], []
    for consumer in consumers_of(producer):
        found = backlog.get(consumer, Backlog(consumer))
        labels = {"producer": producer, "consumer": consumer}
        counts.append((labels, float(found.overdue)))
        ages.append((labels, found.oldest_age_seconds))
    return {
        (
            "suite_events_unhandled",
            "Published events a consumer has not acknowledged within the delivery bound",
        ): counts,
        (
            "suite_events_unhandled_oldest_age_seconds",
            "Age of the oldest such event (0 when none)",
        ): ages,
    }


def prune(
    session: Session,
    model: type[DeliveryMixin],
    *,
    before: datetime,
    settled_only: bool = False,
    limit: int | None = None,
) -> int:
    """Forget deliveries first sent before ``before`` (the events they are about are pruned too).

    With ``settled_only`` an unacknowledged delivery stays (it is still redelivered); with ``limit``, the
    deliveries of at most that many rows' events go, so one call holds few row locks.
    """
    condition = model.first_sent_at < before
    if settled_only:
        condition = condition & model.outcome.is_not(None)
    if limit is None:
        return rowcount(session.execute(delete(model).where(condition)))
    ids = set(
        session.scalars(
            select(model.event_id).where(condition).limit(limit).with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return 0
    return rowcount(session.execute(delete(model).where(condition, model.event_id.in_(ids))))
