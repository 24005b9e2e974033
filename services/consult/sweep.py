"""The sweeper: completes rooms whose time is up and re-sends join links that never reached the queue.

The database says what is due, so nothing is lost when Redis restarts and no job per room waits in Redis.
Running two sweepers is harmless (completing a room and publishing an event are both idempotent), but one
is enough.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from redis import Redis
from sqlalchemy import delete

from services.consult import publishing, rooms
from services.consult.local_video import PRESENCE_TTL
from services.consult.models import LocalVideoParticipant
from services.consult.video import VideoProvider
from shared.db import Database
from shared.links import LinkSigner
from shared.loop import run_loop
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


def run_sweeper(
    *,
    db: Database,
    redis: Redis,
    video: VideoProvider,
    signer: LinkSigner,
    base_url: str,
    interval: float,
    redeliver_seconds: float = 45.0,
    stop: threading.Event | None = None,
) -> None:
    """Sweep every ``interval`` seconds until ``stop`` is set (or SIGTERM/SIGINT arrives)."""

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
        return interval

    run_loop("consult sweeper", step, max_backoff=60.0, stop=stop)
