"""The sweeper: completes rooms whose time is up, re-sends join links that never reached the queue, and
deletes what consult no longer needs.

The database says what is due, so nothing is lost when Redis restarts and no job per room waits in Redis.
Running two sweepers is harmless (completing a room and publishing an event are both idempotent), but one
is enough.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis import Redis
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from services.consult import publishing, rooms
from services.consult.local_video import PRESENCE_TTL
from services.consult.models import (
    IN_PROGRESS,
    Consultation,
    LinksDelivery,
    LocalVideoParticipant,
    ProcessedEvent,
    Room,
)
from services.consult.video import VideoProvider
from shared import delivery, inbox
from shared.db import Database, rowcount
from shared.links import LinkSigner
from shared.loop import run_loop
from shared.retention import PRUNE_BATCH, Batch, Every, log_pruned, prune_tables
from shared.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """What one round did."""

    rooms_completed: int
    links_published: int
    links_redelivered: int = 0


def sweep_once(
    *,
    db: Database,
    redis: Redis,
    video: VideoProvider,
    signer: LinkSigner,
    base_url: str,
    redeliver_seconds: float = 45.0,
) -> SweepResult:
    """One round: complete due rooms, publish and redeliver links, forget stale local presence."""
    completed = rooms.complete_due_rooms(db=db, video=video)
    published = publishing.publish_pending_links(db=db, redis=redis, signer=signer, base_url=base_url)
    redelivered = publishing.reconcile_links(
        db=db, redis=redis, signer=signer, base_url=base_url, grace=redeliver_seconds
    ).redelivered
    with db.transaction() as session:
        session.execute(
            delete(LocalVideoParticipant).where(
                LocalVideoParticipant.last_seen_at < utcnow() - PRESENCE_TTL - timedelta(minutes=1)
            )
        )
    return SweepResult(completed, published, redelivered)


def prune_visits(session: Session, *, now: datetime, keep: timedelta, limit: int) -> int:
    """Delete up to ``limit`` consultations, with their rooms, whose window closed and that no booking event
    touched over ``keep`` ago, unless a room of theirs is still to be completed; how many consultations."""
    cutoff = now - keep
    ids = list(
        session.scalars(
            select(Consultation.booking_id)
            .where(
                Consultation.closes_at < cutoff,
                Consultation.updated_at < cutoff,
                ~exists().where(Room.booking_id == Consultation.booking_id, Room.status == IN_PROGRESS),
            )
            .limit(limit)
            .with_for_update(of=Consultation, skip_locked=True)
        )
    )
    if not ids:
        return 0
    session.execute(delete(Room).where(Room.booking_id.in_(ids)))
    return rowcount(session.execute(delete(Consultation).where(Consultation.booking_id.in_(ids))))


def _prunes(*, inbox_retention_days: int, visit_retention_days: int) -> dict[str, Batch]:
    """Per table, one bounded batch of what consult no longer needs (docs/architecture.md, Retention)."""
    inbox_kept = timedelta(days=inbox_retention_days)
    visits_kept = timedelta(days=visit_retention_days)
    return {
        "consultations": lambda session, now: prune_visits(
            session, now=now, keep=visits_kept, limit=PRUNE_BATCH
        ),
        "event_deliveries": lambda session, now: delivery.prune(
            session, LinksDelivery, before=now - visits_kept, settled_only=True, limit=PRUNE_BATCH
        ),
        "processed_events": lambda session, now: inbox.prune(
            session, ProcessedEvent, before=now - inbox_kept, limit=PRUNE_BATCH
        ),
    }


def prune(
    *, db: Database, inbox_retention_days: int, visit_retention_days: int, now: datetime | None = None
) -> dict[str, int]:
    """Delete what consult no longer needs, table by table, in bounded batches; rows gone per table."""
    batches = _prunes(inbox_retention_days=inbox_retention_days, visit_retention_days=visit_retention_days)
    return prune_tables(db, batches, limit=PRUNE_BATCH, now=now)


def run_sweeper(
    *,
    db: Database,
    redis: Redis,
    video: VideoProvider,
    signer: LinkSigner,
    base_url: str,
    interval: float,
    inbox_retention_days: int,
    visit_retention_days: int,
    redeliver_seconds: float = 45.0,
    stop: threading.Event | None = None,
) -> None:
    """Sweep every ``interval`` seconds (and prune every few minutes) until ``stop`` is set (or SIGTERM/SIGINT
    arrives)."""
    pruning = Every()

    def step() -> float:
        result = sweep_once(
            db=db,
            redis=redis,
            video=video,
            signer=signer,
            base_url=base_url,
            redeliver_seconds=redeliver_seconds,
        )
        if result.rooms_completed or result.links_published or result.links_redelivered:
            log.info("sweep done", extra=vars(result))
        if pruning.due():
            pruned = prune(
                db=db, inbox_retention_days=inbox_retention_days, visit_retention_days=visit_retention_days
            )
            log_pruned("consult", pruned)
        return interval

    run_loop("consult sweeper", step, max_backoff=60.0, stop=stop)
