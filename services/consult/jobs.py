"""Queue handlers of the consult service. Each takes plain JSON data and is idempotent."""

from __future__ import annotations

import logging
from typing import Any

from services.consult.models import ProcessedEvent
from shared.db import get_db
from shared.events import load_event
from shared.inbox import first_delivery
from shared.logging import correlation

log = logging.getLogger(__name__)


def handle_booking_event(payload: dict[str, Any]) -> str:
    """Take note of a booking event (the consult issue gives it its real work)."""
    event = load_event(payload)
    with correlation(event.correlation_id), get_db().transaction() as session:
        if not first_delivery(session, ProcessedEvent, event_id=event.event_id, event_type=event.type):
            log.info("event already handled", extra={"event_id": str(event.event_id)})
            return "duplicate"
        log.info(
            "received %s",
            event.type,
            extra={
                "event_id": str(event.event_id),
                "booking_id": str(event.booking.id),
                "version": event.booking.version,
            },
        )
        return "handled"
