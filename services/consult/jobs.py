"""Queue handlers of the consult service. Each takes plain JSON data and is idempotent."""

from __future__ import annotations

import logging
from typing import Any

from services.consult import bookings, publishing, rooms
from services.consult.models import ProcessedEvent
from services.consult.runtime import get_runtime
from shared.app import get_redis
from shared.db import get_db
from shared.events import load_event
from shared.inbox import first_delivery
from shared.links import current_signer
from shared.logging import correlation

log = logging.getLogger(__name__)


def handle_booking_event(payload: dict[str, Any]) -> str:
    """Record a video booking's new version, then publish its links and complete rooms it made obsolete."""
    event = load_event(payload)
    config = get_runtime().config
    db = get_db()
    with correlation(event.correlation_id):
        with db.transaction() as session:
            if first_delivery(session, ProcessedEvent, event_id=event.event_id, event_type=event.type):
                outcome = bookings.apply_booking_event(
                    session=session,
                    event=event,
                    opens_before=config.opens_before,
                    closes_after=config.closes_after,
                )
            else:
                log.info("event already handled", extra={"event_id": str(event.event_id)})
                outcome = "duplicate"
        if outcome == "not-video":
            return outcome
        # What follows reaches other systems after the commit. It runs on every delivery, a duplicate
        # included, so a delivery that crashed after committing is finished by the next one; the inbox
        # alone would swallow it.
        rooms.complete_due_rooms(db=db, video=get_runtime().video, booking_id=event.booking.id)
        publishing.publish_pending_links(
            db=db,
            redis=get_redis(),
            signer=current_signer(),
            base_url=config.consult_public_url,
            booking_id=event.booking.id,
        )
    return outcome
