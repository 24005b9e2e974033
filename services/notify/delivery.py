"""What Twilio tells us after a send: delivery status callbacks (inbound SMS: services/notify/replies)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notify import optouts
from services.notify.metrics import DELIVERY, error_label, status_label
from services.notify.models import SENDING, SENT, SMS, Message
from services.notify.senders.twilio_sms import OPTED_OUT_CODE
from shared.metrics import count_after_commit
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

# Twilio's message statuses in the order they can happen; a late callback never moves a message backwards.
_RANK = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "read": 6,
}


@dataclass(frozen=True)
class StatusUpdate:
    """One status callback's content."""

    message_sid: str
    status: str  # lower-case, as Twilio sends it
    error_code: str | None = None
    message_id: int | None = None  # our row id, from the callback URL we gave Twilio


def record_status(*, session: Session, update: StatusUpdate) -> bool:
    """Apply a status callback to its message; False when no message matches."""
    now = utcnow()
    # Twilio reports on the SMS it sent; a callback naming an email of ours is about nothing.
    query = select(Message).where(Message.channel == SMS)
    if update.message_id is not None:
        query = query.where(Message.id == update.message_id)
    else:
        query = query.where(Message.provider_ref == update.message_sid)
    row = session.scalars(query.with_for_update()).first()
    if row is None or (row.provider_ref not in (None, update.message_sid)):
        log.warning("status callback for an unknown message", extra={"message_id": update.message_id})
        return False
    if row.status == SENDING:
        # The send was accepted but its worker died before recording it: Twilio's callback proves it went.
        row.status, row.sent_at, row.reason = SENT, now, "sent (confirmed by Twilio's status callback)"
    if row.provider_ref is None:
        row.provider_ref = update.message_sid
    status = update.status
    if _RANK.get(status, 0) >= _RANK.get(row.delivery_status or "", 0):
        row.delivery_status = status
        row.delivery_updated_at = now
        if update.error_code:
            row.error_code = update.error_code
    if update.error_code == str(OPTED_OUT_CODE) and row.recipient:
        optouts.set_opt_out(session, row.recipient, opted_out=True, source="twilio-21610", now=now)
    row.updated_at = now
    log.info("delivery status %s", status, extra={"message_id": row.id, "error_code": update.error_code})
    count_after_commit(
        session, DELIVERY, status=status_label(status), error_code=error_label(update.error_code)
    )
    return True
