"""The outbox relay: moves committed events from the ``outbox`` table to the Redis queues."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from services.booking.models import OutboxDelivery, OutboxEvent, ProcessedEvent
from shared import delivery, inbox, killpoints
from shared.db import Database, rowcount
from shared.logging import correlation
from shared.loop import run_loop
from shared.metrics import OUTBOX_PUBLISHED, count_after_commit
from shared.queues import publish
from shared.retention import PRUNE_BATCH, Every, log_pruned, prune_tables
from shared.timeutil import utcnow

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 5.0  # how often the relay takes acknowledgements and redelivers what is overdue


def relay_once(*, db: Database, redis: Redis, batch_size: int = 200) -> int:
    """Publish up to ``batch_size`` pending events; return how many were published."""
    with db.transaction() as session:
        query = (
            select(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.seq)
            .limit(batch_size)
            .with_for_update(skip_locked=True)  # nothing on SQLite, whose writers are serialized
        )
        rows = session.scalars(query).all()
        if not rows:
            return 0
        pipe = redis.pipeline(transaction=False)
        for row in rows:
            # Each job carries its booking's correlation id on (shared.queues.SuiteQueue stamps it).
            with correlation(str(row.payload.get("correlation_id") or "") or None):
                publish(redis, row.payload, pipeline=pipe)
        pipe.execute()
        killpoints.reached("relay.published")
        now = utcnow()
        delivery.record_sent(session, OutboxDelivery, [(row.event_id, row.event_type) for row in rows], now)
        for row in rows:
            row.published_at = now
            row.attempts += 1
            count_after_commit(session, OUTBOX_PUBLISHED, event_type=row.event_type)
        for row in rows:
            with correlation(str(row.payload.get("correlation_id") or "") or None):
                log.info(
                    "published %s",
                    row.event_type,
                    extra={"event_id": str(row.event_id), "booking_id": str(row.booking_id), "seq": row.seq},
                )
        log.info("published %d events", len(rows), extra={"last_seq": rows[-1].seq})
        return len(rows)


def pending_count(db: Database) -> int:
    """Events committed but not yet on a queue."""
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
            )
            or 0
        )


def backlog(db: Database) -> tuple[int, float]:
    """Events waiting for the relay, and how long the oldest has waited (seconds; 0 when none waits)."""
    with db.transaction() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(OutboxEvent.published_at.is_(None))
        ).one()
    if not count or oldest is None:
        return 0, 0.0
    # min() keeps the column's type, so ``oldest`` is an aware UTC datetime on every backend.
    return int(count), max(0.0, (utcnow() - oldest).total_seconds())


def backlog_metrics() -> dict[tuple[str, str], list[tuple[dict[str, str], float]]]:
    """The outbox backlog as gauges, for the booking service's ``/metrics``."""
    from shared.db import get_db

    count, age = backlog(get_db())
    return {
        ("suite_outbox_pending_events", "Booking events committed but not yet on a queue"): [({}, count)],
        (
            "suite_outbox_oldest_pending_age_seconds",
            "How long the oldest unpublished booking event has waited for the relay (0 when none waits)",
        ): [({}, age)],
    }


def republish_since(*, db: Database, since: datetime) -> int:
    """Mark every event published at or after ``since`` as waiting again, so the relay sends it again.

    For a Redis that lost its queues (a failover to an empty replica, a restore): the jobs it held are gone,
    the events are still here (for OUTBOX_RETENTION_DAYS). Consumers drop what they had already handled
    (their inbox), so a generous ``since`` is safe. Returns how many events will be sent again.
    """
    with db.transaction() as session:
        result = session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.published_at.is_not(None), OutboxEvent.published_at >= since)
            .values(published_at=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def prune(*, db: Database, retention: timedelta, now: datetime | None = None) -> int:
    """Delete, in bounded batches, events published longer than ``retention`` ago and their delivery records;
    how many events."""

    def deliveries(session: Session, now: datetime) -> int:
        return delivery.prune(session, OutboxDelivery, before=now - retention, limit=PRUNE_BATCH)

    def events(session: Session, now: datetime) -> int:
        # Through ix_outbox_unpublished (published_at, seq): a range, never the waiting events (NULL).
        seqs = list(
            session.scalars(
                select(OutboxEvent.seq)
                .where(OutboxEvent.published_at < now - retention)
                .limit(PRUNE_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        return rowcount(session.execute(delete(OutboxEvent).where(OutboxEvent.seq.in_(seqs)))) if seqs else 0

    batches = {"event_deliveries": deliveries, "outbox": events}
    return prune_tables(db, batches, limit=PRUNE_BATCH, now=now)["outbox"]


def prune_inbox(*, db: Database, retention_days: int, now: datetime | None = None) -> int:
    """Forget, in bounded batches, the events booking handled over ``retention_days`` ago; how many."""
    keep = timedelta(days=retention_days)

    def batch(session: Session, now: datetime) -> int:
        return inbox.prune(session, ProcessedEvent, before=now - keep, limit=PRUNE_BATCH)

    return prune_tables(db, {"processed_events": batch}, limit=PRUNE_BATCH, now=now)["processed_events"]


def outbox_payloads(session: Session, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The events among ``event_ids`` still in the outbox, as published."""
    rows = session.execute(
        select(OutboxEvent.event_id, OutboxEvent.payload).where(OutboxEvent.event_id.in_(event_ids))
    )
    return {event_id: payload for event_id, payload in rows}  # noqa: C416 - rows are (id, payload) Row objects


def reconcile_once(
    *, db: Database, redis: Redis, grace: float, bound: float = 120.0
) -> delivery.ReconcileReport:
    """Take the consumers' acknowledgements and redeliver booking events they have not acknowledged."""
    return delivery.reconcile_once(
        db=db,
        connection=redis,
        model=OutboxDelivery,
        producer="booking",
        grace=grace,
        bound=bound,
        payloads=outbox_payloads,
    )


def delivery_metrics(bound: float) -> Any:
    """Gauges of booking events consumers have not acknowledged within ``bound`` seconds."""
    from shared.db import get_db

    return lambda: delivery.backlog_metrics(get_db(), OutboxDelivery, producer="booking", bound=bound)


def run_relay(
    *,
    db: Database,
    redis: Redis,
    poll_seconds: float,
    batch_size: int,
    retention: timedelta,
    redeliver_seconds: float,
    inbox_retention_days: int,
    delivery_bound_seconds: float = 120.0,
    stop: threading.Event | None = None,
) -> None:
    """Relay until ``stop`` is set (or SIGTERM/SIGINT arrives), backing off while Redis is unreachable."""
    due = {"reconcile": 0.0}
    pruning = Every()

    def step() -> float:
        moved = relay_once(db=db, redis=redis, batch_size=batch_size)
        now = time.monotonic()
        if now >= due["reconcile"]:
            reconcile_once(db=db, redis=redis, grace=redeliver_seconds, bound=delivery_bound_seconds)
            due["reconcile"] = now + min(RECONCILE_SECONDS, redeliver_seconds / 3)
        if pruning.due():
            pruned = {
                "outbox": prune(db=db, retention=retention),
                "processed_events": prune_inbox(db=db, retention_days=inbox_retention_days),
            }
            log_pruned("booking", pruned)
        return 0.0 if moved >= batch_size else poll_seconds

    run_loop("outbox relay", step, max_backoff=5.0, stop=stop)
