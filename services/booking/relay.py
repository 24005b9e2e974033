"""The outbox relay: moves committed events from the ``outbox`` table to the Redis queues.

A booking commits its events in the same transaction as itself. The relay publishes them in order and marks
them published in a second transaction. If Redis is down the rows simply wait; if the relay dies between
publishing and marking, the next round publishes again, which consumers absorb (every handler is
idempotent by event id). On PostgreSQL several relays can run side by side (``SKIP LOCKED``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timedelta
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError

from services.booking.models import OutboxEvent
from shared.db import Database
from shared.queues import publish
from shared.timeutil import utcnow

log = logging.getLogger(__name__)


def relay_once(*, db: Database, redis: Redis, batch_size: int = 200) -> int:
    """Publish up to ``batch_size`` pending events; return how many were published."""
    with db.transaction() as session:
        query = (
            select(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.seq)
            .limit(batch_size)
        )
        if db.backend == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.scalars(query).all()
        if not rows:
            return 0
        pipe = redis.pipeline(transaction=False)
        for row in rows:
            publish(redis, row.payload, pipeline=pipe)
        pipe.execute()
        now = utcnow()
        for row in rows:
            row.published_at = now
            row.attempts += 1
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


def prune(*, db: Database, retention: timedelta) -> int:
    """Delete events published longer than ``retention`` ago."""
    with db.transaction() as session:
        result = session.execute(
            delete(OutboxEvent).where(
                OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < utcnow() - retention
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)


def run_relay(
    *,
    db: Database,
    redis: Redis,
    poll_seconds: float,
    batch_size: int,
    retention: timedelta,
    stop: threading.Event | None = None,
) -> None:
    """Relay until ``stop`` is set (or SIGTERM/SIGINT arrives), backing off while Redis is unreachable."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    backoff = poll_seconds
    next_prune = 0.0
    log.info("outbox relay started")
    while not stop.is_set():
        try:
            moved = relay_once(db=db, redis=redis, batch_size=batch_size)
        except (RedisError, OperationalError) as exc:
            backoff = min(max(backoff * 2, 0.5), 5.0)
            log.warning(
                "redis or database unreachable; events wait in the outbox",
                extra={"error": type(exc).__name__},
            )
            stop.wait(backoff)
            continue
        backoff = poll_seconds
        if time.monotonic() >= next_prune:
            pruned = prune(db=db, retention=retention)
            if pruned:
                log.info("pruned %d published events", pruned)
            next_prune = time.monotonic() + 600
        if moved < batch_size:
            stop.wait(poll_seconds)
    log.info("outbox relay stopped")
