"""Check-ins and alerts made due, and their ``checkin.*`` events published for notify."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from services.checkins import instruments, links
from services.checkins.config import CheckinsConfig
from services.checkins.models import (
    CANCELLED,
    COMPLETED,
    EXPIRED,
    OPEN,
    PLANNED,
    SENT,
    Alert,
    Checkin,
    CheckinDelivery,
)
from shared import delivery
from shared.db import Database
from shared.events import RATINGS, CheckinAlertEvent, CheckinClosedEvent, CheckinRequestedEvent, dump_event
from shared.links import LinkSigner
from shared.queues import publish
from shared.timeutil import utcnow

log = logging.getLogger(__name__)
# A reminder is pointless when the link is about to stop working.
REMINDER_MARGIN = timedelta(hours=2)
MAX_REMINDERS = 1
# How a rating asked by SMS may close in this service (an expiry notify knows itself).
CLOSED_HERE = (COMPLETED, CANCELLED)


@dataclass(frozen=True)
class Publisher:
    """What publishing needs: the database, Redis, the signer and the settings."""

    db: Database
    redis: Redis
    signer: LinkSigner
    config: CheckinsConfig


def checkin_event(p: Publisher, c: Checkin) -> dict[str, Any]:
    """The payload of the check-in's current send (the same on every re-send): ``checkin.requested``, or
    ``checkin.closed`` once a rating asked by SMS closed here."""
    assert c.event_id is not None
    assert c.event_at is not None
    if _is_closing(c):
        return dump_event(
            CheckinClosedEvent(
                event_id=c.event_id, occurred_at=c.event_at, booking_id=c.booking_id, checkin_id=c.id
            )
        )
    return dump_event(
        CheckinRequestedEvent(
            event_id=c.event_id,
            occurred_at=c.event_at,
            booking_id=c.booking_id,
            booking_version=c.booking_version,
            checkin_id=c.id,
            checkin_url=links.checkin_url(p.signer, p.config.checkins_public_url, c),
            expires_at=c.expires_at,
            reminder=c.reminders,
            rating=sms_rating(c),
        )
    )


def close_send(c: Checkin, now: datetime) -> None:
    """A new send telling notify that this rating, asked by SMS, closed here (answered by its page, stopped):
    a number the patient texts afterwards is then told the truth instead of thanked."""
    if c.event_id is not None and sms_rating(c) is not None:
        _new_send(c, now)


def _is_closing(c: Checkin) -> bool:
    """Whether the row's current send is its closing (made when it closed), not an older request."""
    return c.status in CLOSED_HERE and c.event_at == c.updated_at


def _current(now: datetime) -> Any:
    """Check-ins whose current send is still worth delivering: a request still open, or a rating's closing."""
    return and_(
        Checkin.event_id.is_not(None),
        Checkin.expires_at > now,
        or_(
            Checkin.status == SENT,
            and_(
                Checkin.status.in_(CLOSED_HERE),
                Checkin.instrument.in_(RATINGS),
                Checkin.event_at == Checkin.updated_at,
            ),
        ),
    )


def sms_rating(c: Checkin) -> str | None:
    """The rating key notify may ask by SMS reply: a one-item 0-10 instrument, else None (a link only)."""
    one_item = len(instruments.INSTRUMENTS[c.instrument].items) == 1
    return c.instrument if one_item and c.instrument in RATINGS else None


def alert_event(p: Publisher, a: Alert) -> dict[str, Any]:
    """The ``checkin.alert`` payload of an alert: its link and the on-call contacts, nothing else."""
    return dump_event(
        CheckinAlertEvent(
            event_id=a.event_id,
            occurred_at=a.created_at,
            alert_id=a.id,
            booking_id=a.booking_id,
            alert_url=links.alert_url(p.signer, p.config.checkins_public_url, a),
            sms_to=list(p.config.oncall_phones),
            email_to=list(p.config.oncall_emails),
        )
    )


def make_due(session: Session, *, now: datetime, reminder_hours: int, limit: int = 5000) -> dict[str, int]:
    """Mark due check-ins sent (and unanswered ones reminded) with a new event each; expire old ones."""
    due = list(
        session.scalars(
            select(Checkin)
            .where(Checkin.status == PLANNED, Checkin.due_at <= now, Checkin.expires_at > now)
            .order_by(Checkin.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for c in due:
        c.status = SENT
        _new_send(c, now)
    reminded = 0
    if reminder_hours:
        for c in session.scalars(
            select(Checkin)
            .where(
                Checkin.status == SENT,
                Checkin.reminders < MAX_REMINDERS,
                Checkin.event_at <= now - timedelta(hours=reminder_hours),
                Checkin.expires_at > now + REMINDER_MARGIN,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        ):
            c.reminders += 1
            _new_send(c, now)
            reminded += 1
    expired = session.execute(
        update(Checkin)
        .where(Checkin.status.in_(OPEN), Checkin.expires_at <= now)
        .values(status=EXPIRED, updated_at=now)
    )
    return {"due": len(due), "reminded": reminded, "expired": int(getattr(expired, "rowcount", 0) or 0)}


def _new_send(c: Checkin, now: datetime) -> None:
    c.event_id, c.event_at, c.published_at, c.updated_at = uuid.uuid4(), now, None, now


def publish_pending(p: Publisher, *, checkin_id: uuid.UUID | None = None, limit: int = 5000) -> int:
    """Publish every check-in and alert event not yet on the queue (of one check-in, or any); return how many.

    Alerts go first; all go in one Redis pipeline, then one transaction records them in the ledger and stamps
    their rows. Raises ``RedisError`` when Redis is unreachable; the rows stay pending for the next round.
    """
    now = utcnow()
    with p.db.transaction() as session:
        checkins = select(Checkin).where(Checkin.published_at.is_(None), _current(now))
        alerts = select(Alert).where(Alert.published_at.is_(None))
        if checkin_id is not None:
            checkins = checkins.where(Checkin.id == checkin_id)
            alerts = alerts.where(Alert.checkin_id == checkin_id)
        pending: list[tuple[type[Alert] | type[Checkin], dict[str, Any]]]
        pending = [(Alert, alert_event(p, a)) for a in session.scalars(alerts.limit(limit))]
        pending += [(Checkin, checkin_event(p, c)) for c in session.scalars(checkins.limit(limit))]
    if not pending:
        return 0
    pipe = p.redis.pipeline(transaction=False)
    for _, payload in pending:
        publish(p.redis, payload, pipeline=pipe)
    pipe.execute()
    sent = [(model, uuid.UUID(payload["event_id"]), payload["type"]) for model, payload in pending]
    with p.db.transaction() as session:
        stamped = utcnow()
        delivery.record_sent(
            session, CheckinDelivery, [(event_id, kind) for _, event_id, kind in sent], stamped
        )
        for model in (Alert, Checkin):
            ids = [event_id for m, event_id, _ in sent if m is model]
            for start in range(0, len(ids), 1000):
                # By event id: a newer send of the same check-in (a reminder) has its own and stays pending.
                session.execute(
                    update(model)
                    .where(model.event_id.in_(ids[start : start + 1000]))
                    .values(published_at=stamped)
                )
    log.info("check-in events published", extra={"count": len(pending)})
    return len(pending)


def publish_soon(p: Publisher, checkin_id: uuid.UUID) -> None:
    """Publish what an answer raised (an alert) now; if Redis is away, the scheduler's next round does."""
    try:
        publish_pending(p, checkin_id=checkin_id)
    except RedisError as exc:
        log.warning("publish left to the scheduler", extra={"error": type(exc).__name__})


def current_payloads(p: Publisher) -> delivery.PayloadLoader:
    """A loader of the events still worth delivering: alerts always, check-ins' current sends."""

    def load(session: Session, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        found: dict[uuid.UUID, dict[str, Any]] = {}
        for a in session.scalars(select(Alert).where(Alert.event_id.in_(event_ids))):
            found[a.event_id] = alert_event(p, a)
        for c in session.scalars(select(Checkin).where(Checkin.event_id.in_(event_ids), _current(utcnow()))):
            assert c.event_id is not None
            found[c.event_id] = checkin_event(p, c)
        return found

    return load


def delivery_metrics(bound: float) -> Any:
    """Gauges of check-in events notify has not acknowledged within ``bound`` seconds."""
    from shared.db import get_db

    return lambda: delivery.backlog_metrics(get_db(), CheckinDelivery, producer="checkin", bound=bound)
