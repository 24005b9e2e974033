"""Publishing ``notify.sms_reply`` and ``reply.rating``: the reply's row is the outbox, ``event_deliveries``
the ledger; and deleting the rows past their retention once nothing waits on them."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from services.notify.models import BookingCopy, RatingAsk, ReplyDelivery, SmsReply
from services.notify.runtime import Runtime
from shared import delivery
from shared.db import rowcount
from shared.events import ReplyRatingEvent, SmsReplyEvent, dump_event
from shared.queues import publish
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

PRODUCER = "notify"


def reply_event(row: SmsReply) -> dict[str, Any]:
    """The event of a reply row (the same on every re-send): ``reply.rating`` or ``notify.sms_reply``."""
    assert row.event_id is not None
    if row.checkin_id is not None:
        assert row.rating is not None
        return dump_event(
            ReplyRatingEvent(
                event_id=row.event_id,
                occurred_at=row.received_at,
                correlation_id=row.correlation_id,
                checkin_id=row.checkin_id,
                value=row.rating,
            )
        )
    assert row.booking_id is not None
    assert row.booking_version is not None
    return dump_event(
        SmsReplyEvent(
            event_id=row.event_id,
            occurred_at=row.received_at,
            correlation_id=row.correlation_id,
            booking_id=row.booking_id,
            booking_version=row.booking_version,
            meaning=row.meaning or "",
            replied_at=row.received_at,
        )
    )


def publish_pending(runtime: Runtime, *, reply_id: int | None = None, limit: int = 200) -> int:
    """Publish reply events not published yet (one reply's, or any); return how many.

    Raises ``RedisError`` when Redis is unreachable; the rows stay pending.
    """
    with runtime.db.transaction() as session:
        query = (
            select(SmsReply)
            .where(SmsReply.event_id.is_not(None), SmsReply.published_at.is_(None))
            .order_by(SmsReply.id)
            .limit(limit)
        )
        if reply_id is not None:
            query = query.where(SmsReply.id == reply_id)
        pending = [(row.id, reply_event(row)) for row in session.scalars(query)]
    for row_id, payload in pending:
        publish(runtime.redis, payload)
        with runtime.db.transaction() as session:
            delivery.record_sent(
                session, ReplyDelivery, [(uuid.UUID(payload["event_id"]), payload["type"])], utcnow()
            )
            session.execute(
                update(SmsReply)
                .where(SmsReply.id == row_id, SmsReply.published_at.is_(None))
                .values(published_at=utcnow())
            )
    return len(pending)


def publish_after_commit(runtime: Runtime, reply_id: int) -> None:
    """Publish one reply's event now; if Redis is away, the dispatcher's next pass does."""
    try:
        publish_pending(runtime, reply_id=reply_id)
    except RedisError as exc:
        log.warning("reply event not published yet", extra={"error": type(exc).__name__})


def reply_payloads(session: Session, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The reply events among ``event_ids`` still held, as published."""
    rows = session.scalars(select(SmsReply).where(SmsReply.event_id.in_(event_ids)))
    return {row.event_id: reply_event(row) for row in rows if row.event_id is not None}


def relay_once(runtime: Runtime) -> delivery.ReconcileReport:
    """One pass: publish pending reply events, take acknowledgements, redeliver what is overdue."""
    published = publish_pending(runtime)
    report = delivery.reconcile_once(
        db=runtime.db,
        connection=runtime.redis,
        model=ReplyDelivery,
        producer=PRODUCER,
        grace=runtime.config.event_redeliver_seconds,
        bound=runtime.config.event_delivery_bound_seconds,
        payloads=reply_payloads,
    )
    if published:
        log.info("reply events published", extra={"count": published})
    return report


def delivery_metrics(bound: float) -> Any:
    """Gauges of reply events a consumer (booking, checkins) has not acknowledged within ``bound`` seconds."""
    from shared.db import get_db

    return lambda: delivery.backlog_metrics(get_db(), ReplyDelivery, producer=PRODUCER, bound=bound)


def prune(session: Session, *, now: datetime, keep: timedelta, limit: int) -> int:
    """Delete up to ``limit`` inbound SMS received over ``keep`` ago whose booking ended over ``keep`` ago
    (or that matched none), unless an ask points at one or its event is unpublished or unacknowledged."""
    cutoff = now - keep
    ids = list(
        session.scalars(
            select(SmsReply.id)
            .where(
                SmsReply.received_at < cutoff,
                or_(SmsReply.event_id.is_(None), SmsReply.published_at.is_not(None)),
                ~exists().where(BookingCopy.id == SmsReply.booking_id, BookingCopy.end_at >= cutoff),
                ~exists().where(RatingAsk.reply_id == SmsReply.id),
                ~exists().where(
                    and_(ReplyDelivery.event_id == SmsReply.event_id, ReplyDelivery.outcome.is_(None))
                ),
            )
            .limit(limit)
            .with_for_update(of=SmsReply, skip_locked=True)
        )
    )
    if not ids:
        return 0
    return rowcount(session.execute(delete(SmsReply).where(SmsReply.id.in_(ids))))
