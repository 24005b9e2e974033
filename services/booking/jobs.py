"""Queue handlers of the booking service. Each takes plain JSON data and is idempotent."""

from __future__ import annotations

import logging
from typing import Any

from services.booking import attendance
from services.booking.models import ProcessedEvent
from shared.db import get_db
from shared.events import load_sms_reply
from shared.inbox import first_delivery
from shared.logging import correlation

log = logging.getLogger(__name__)


def handle_sms_reply(payload: dict[str, Any]) -> str:
    """Apply what a patient's SMS reply meant (``notify.sms_reply``) to the booking's attendance."""
    event = load_sms_reply(payload)
    with correlation(event.correlation_id), get_db().transaction() as session:
        if not first_delivery(session, ProcessedEvent, event_id=event.event_id, event_type=event.type):
            log.info("event already handled", extra={"event_id": str(event.event_id)})
            return "duplicate"
        return attendance.apply_sms_reply(session=session, event=event)
