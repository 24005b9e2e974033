"""Publishing ``consult.links_ready``: the two join links of a booking version, for notify to send."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from redis import Redis
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.consult.metrics import LINKS_PUBLISHED
from services.consult.models import CONFIRMED, Consultation, LinksDelivery
from shared import delivery
from shared.db import Database
from shared.events import LinksReadyEvent, dump_event
from shared.links import PATIENT, PROVIDER, LinkSigner, join_token, join_url, new_secret
from shared.logging import correlation
from shared.queues import publish
from shared.timeutil import utcnow

log = logging.getLogger(__name__)


def join_links(signer: LinkSigner, base_url: str, consultation: Consultation) -> dict[str, str]:
    """The patient's and the provider's join links of the consultation's current version."""
    if consultation.link_secret is None:
        reissue(consultation, utcnow())  # a row an older release made: saved with the caller's commit
    assert consultation.link_secret is not None
    return {
        participant: join_url(
            base_url,
            join_token(
                signer,
                booking_id=str(consultation.booking_id),
                version=consultation.version,
                participant=participant,
                ends_at=consultation.end_at,
                secret=consultation.link_secret,
            ),
        )
        for participant in (PATIENT, PROVIDER)
    }


def reissue(consultation: Consultation, now: datetime) -> None:
    """Give a consultation made by a release before join-link secrets a secret and new links to publish."""
    consultation.link_secret = new_secret()
    consultation.links_event_id = uuid.uuid4()
    consultation.links_issued_at = now
    consultation.links_published_at = None


def links_ready_event(signer: LinkSigner, base_url: str, consultation: Consultation) -> LinksReadyEvent:
    """The ``consult.links_ready`` event of the consultation's current version (the same on every re-send)."""
    assert consultation.links_event_id is not None
    assert consultation.links_issued_at is not None
    links = join_links(signer, base_url, consultation)
    return LinksReadyEvent(
        event_id=consultation.links_event_id,
        occurred_at=consultation.links_issued_at,
        correlation_id=consultation.correlation_id,
        booking_id=consultation.booking_id,
        booking_version=consultation.version,
        patient_join_url=links[PATIENT],
        provider_join_url=links[PROVIDER],
        opens_at=consultation.opens_at,
        closes_at=consultation.closes_at,
    )


def republish_since(*, db: Database, since: datetime) -> int:
    """Mark links published at or after ``since`` (windows still open) as waiting: the sweeper re-sends them.

    For a Redis that lost its queues: the re-send is the same event (same id), so notify's inbox drops it
    where it had already arrived. Returns how many bookings' links will be sent again.
    """
    with db.transaction() as session:
        result = session.execute(
            update(Consultation)
            .where(
                Consultation.status == CONFIRMED,
                Consultation.links_published_at.is_not(None),
                Consultation.links_published_at >= since,
                Consultation.closes_at > utcnow(),
            )
            .values(links_published_at=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def publish_pending_links(
    *,
    db: Database,
    redis: Redis,
    signer: LinkSigner,
    base_url: str,
    booking_id: uuid.UUID | None = None,
    limit: int = 100,
) -> int:
    """Publish the links no one has published yet (of one booking, or any); return how many.

    Links whose window has already closed are not sent: they could never open a room.
    Raises ``RedisError`` when Redis is unreachable; the rows stay pending.
    """
    now = utcnow()
    with db.transaction() as session:
        query = (
            select(Consultation)
            .where(
                Consultation.status == CONFIRMED,
                # Links published before join-link secrets (link_secret NULL) no longer open: send new ones.
                or_(Consultation.links_published_at.is_(None), Consultation.link_secret.is_(None)),
                Consultation.links_event_id.is_not(None),
                Consultation.closes_at > now,
            )
            .order_by(Consultation.links_issued_at)
            .limit(limit)
        )
        if booking_id is not None:
            query = query.where(Consultation.booking_id == booking_id)
        pending = [
            (c.booking_id, c.version, dump_event(links_ready_event(signer, base_url, c)))
            for c in session.scalars(query)
        ]
    for pending_id, version, payload in pending:
        # The sweeper re-sends outside any job: log under the booking's own correlation id.
        with correlation(payload.get("correlation_id") or None):
            _publish_one(db, redis, pending_id, version, payload)
    return len(pending)


def _publish_one(
    db: Database, redis: Redis, booking_id: uuid.UUID, version: int, payload: dict[str, Any]
) -> None:
    publish(redis, payload)
    LINKS_PUBLISHED.inc()
    with db.transaction() as session:
        delivery.record_sent(
            session, LinksDelivery, [(uuid.UUID(payload["event_id"]), payload["type"])], utcnow()
        )
        # Only the version just sent: a newer one that arrived meanwhile still needs its own links sent.
        session.execute(
            update(Consultation)
            .where(
                Consultation.booking_id == booking_id,
                Consultation.version == version,
                Consultation.links_published_at.is_(None),
            )
            .values(links_published_at=utcnow())
        )
    log.info(
        "join links published",
        extra={"booking_id": str(booking_id), "version": version, "event_id": payload["event_id"]},
    )


def current_links_payloads(signer: LinkSigner, base_url: str) -> delivery.PayloadLoader:
    """A loader of the links events still current (booking confirmed at that version, window open)."""

    def load(session: Session, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        rows = session.scalars(
            select(Consultation).where(
                Consultation.links_event_id.in_(event_ids),
                Consultation.status == CONFIRMED,
                Consultation.closes_at > utcnow(),
                # Links from before join-link secrets: the publisher re-issues them under a new event id.
                Consultation.link_secret.is_not(None),
            )
        )
        return {
            c.links_event_id: dump_event(links_ready_event(signer, base_url, c))
            for c in rows
            if c.links_event_id
        }

    return load


def reconcile_links(
    *, db: Database, redis: Redis, signer: LinkSigner, base_url: str, grace: float, bound: float = 120.0
) -> delivery.ReconcileReport:
    """Take notify's acknowledgements and redeliver the links events it has not acknowledged."""
    return delivery.reconcile_once(
        db=db,
        connection=redis,
        model=LinksDelivery,
        producer="consult",
        grace=grace,
        bound=bound,
        payloads=current_links_payloads(signer, base_url),
    )


def delivery_metrics(bound: float) -> Any:
    """Gauges of links events notify has not acknowledged within ``bound`` seconds."""
    from shared.db import get_db

    return lambda: delivery.backlog_metrics(get_db(), LinksDelivery, producer="consult", bound=bound)
