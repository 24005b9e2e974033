"""What the checkins service reports on ``/metrics`` besides requests, read when scraped."""

from __future__ import annotations

from sqlalchemy import func, select

from services.checkins.models import PLANNED, SENT, Alert, Checkin
from shared.db import get_db
from shared.timeutil import utcnow

Samples = dict[tuple[str, str], list[tuple[dict[str, str], float]]]


def read() -> Samples:
    """Check-ins overdue for sending, alerts not yet on the queue, and alerts nobody acknowledged."""
    now = utcnow()
    with get_db().transaction() as session:
        overdue = session.scalar(
            select(func.count()).select_from(Checkin).where(Checkin.status == PLANNED, Checkin.due_at <= now)
        )
        unpublished = session.scalar(
            select(func.count())
            .select_from(Checkin)
            .where(Checkin.status == SENT, Checkin.published_at.is_(None))
        )
        alerts_unsent = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.published_at.is_(None))
        )
        alerts_open = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.acknowledged_at.is_(None))
        )
    return {
        ("suite_checkins_due", "Check-ins due and not yet sent"): [({}, float(overdue or 0))],
        ("suite_checkins_unpublished", "Sent check-ins whose event is not on the queue yet"): [
            ({}, float(unpublished or 0))
        ],
        ("suite_checkins_alerts_unpublished", "Safety alerts not yet on the queue"): [
            ({}, float(alerts_unsent or 0))
        ],
        ("suite_checkins_alerts_unacknowledged", "Safety alerts nobody has acknowledged"): [
            ({}, float(alerts_open or 0))
        ],
    }
