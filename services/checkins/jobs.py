"""Queue handlers of the checkins service. Each takes plain JSON data and is idempotent."""

from __future__ import annotations

import logging
from typing import Any

from services.checkins import planning, service
from services.checkins.models import ProcessedEvent
from services.checkins.runtime import get_runtime
from shared.db import get_db
from shared.events import load_event, load_reply_rating
from shared.inbox import first_delivery
from shared.logging import correlation
from shared.timeutil import utcnow

log = logging.getLogger(__name__)


def handle_booking_event(payload: dict[str, Any]) -> str:
    """Record a session's new version and re-plan its patient's check-ins."""
    event = load_event(payload)
    with correlation(event.correlation_id), get_db().transaction() as session:
        if not first_delivery(session, ProcessedEvent, event_id=event.event_id, event_type=event.type):
            log.info("event already handled", extra={"event_id": str(event.event_id)})
            return "duplicate"
        return planning.apply_booking_event(
            session=session, book=get_runtime().plans, event=event, now=utcnow()
        )


def handle_reply_rating(payload: dict[str, Any]) -> str:
    """Apply a 0-10 rating the patient sent by SMS (notify matched the reply to the check-in)."""
    event = load_reply_rating(payload)
    with correlation(event.correlation_id):
        with get_db().transaction() as session:
            if not first_delivery(session, ProcessedEvent, event_id=event.event_id, event_type=event.type):
                return "duplicate"
            outcome = service.reply_rating(
                session=session,
                checkin_id=event.checkin_id,
                value=event.value,
                rules=get_runtime().rules,
                now=utcnow(),
            )
        log.info("rating reply %s", outcome, extra={"checkin_id": str(event.checkin_id)})
        return outcome
