"""What the consult service reports on ``/metrics`` besides requests: rooms and join links, read when scraped.

Only the small, indexed sets are counted (open rooms, rooms past their time, links not yet on the queue),
so a scrape stays cheap however many consultations the table holds.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import func, select

from services.consult.models import CONFIRMED, IN_PROGRESS, Consultation, Room
from shared.db import get_db
from shared.metrics import age_seconds
from shared.timeutil import utcnow

LINKS_PUBLISHED = Counter(
    "suite_consult_links_published", "consult.links_ready events put on the queue (re-sends included)"
)

# A room this far past its time has been missed by at least a few sweeper rounds.
OVERDUE = timedelta(minutes=2)

Samples = dict[tuple[str, str], list[tuple[dict[str, str], float]]]


def read() -> Samples:
    """Open rooms, rooms the sweeper has not completed in time, and join links waiting for the queue."""
    now = utcnow()
    with get_db().transaction() as session:
        open_rooms = session.scalar(select(func.count()).select_from(Room).where(Room.status == IN_PROGRESS))
        overdue = session.scalar(
            select(func.count())
            .select_from(Room)
            .where(Room.status == IN_PROGRESS, Room.complete_after < now - OVERDUE)
        )
        pending, oldest = session.execute(
            select(func.count(), func.min(Consultation.links_issued_at)).where(
                Consultation.status == CONFIRMED,
                Consultation.links_published_at.is_(None),
                Consultation.links_event_id.is_not(None),
                Consultation.closes_at > now,
            )
        ).one()
    return {
        ("suite_consult_rooms_open", "Video rooms in progress"): [({}, float(open_rooms or 0))],
        (
            "suite_consult_rooms_overdue",
            "Rooms still in progress two minutes after they were due to close (is the sweeper running?)",
        ): [({}, float(overdue or 0))],
        ("suite_consult_links_pending", "Join links issued but not yet on the queue for notify"): [
            ({}, float(pending or 0))
        ],
        (
            "suite_consult_links_pending_oldest_age_seconds",
            "How long the oldest unpublished join links have waited (0 when none wait)",
        ): [({}, age_seconds(oldest, now) if pending else 0.0)],
    }
