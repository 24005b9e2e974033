"""Sending a booking's current manage link again, asked for from an older or cancelled booking's link."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.booking import outbox
from services.booking.models import Booking, OutboxEvent
from services.booking.service import booking_behind_link
from shared import events, links
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)


def request_current_link(
    *,
    session: Session,
    signer: links.LinkSigner,
    token: str,
    per_hour: int,
    allow_expired: bool = False,
    now: datetime | None = None,
) -> tuple[Booking, bool]:
    """Ask notify to send the current link of the booking ``token`` names; the booking, and whether it was.

    Nothing is asked once ``per_hour`` asks for this booking were made in the last hour, nor when even the
    current link has expired. The caller answers the same either way: whoever holds an old link learns
    nothing of the booking. 404 for a forged token; 410 for an expired one, unless ``allow_expired`` (the
    pages' expired-link form: the link is still genuine, and only the contacts on file hear of it).
    """
    booking, _ = booking_behind_link(session=session, signer=signer, token=token, allow_expired=allow_expired)
    now = now or utcnow()
    # The booking row's lock orders concurrent asks, so the count below cannot be passed twice.
    session.execute(select(Booking.id).where(Booking.id == booking.id).with_for_update())
    if now >= booking.end_at + links.MANAGE_LINK_GRACE:
        return booking, False  # the current link would not open either
    asked = session.scalar(
        select(func.count())
        .select_from(OutboxEvent)
        .where(
            OutboxEvent.booking_id == booking.id,
            OutboxEvent.event_type == events.BOOKING_LINK_REQUESTED,
            OutboxEvent.created_at > now - WINDOW,
        )
    )
    if (asked or 0) >= per_hour:
        log.info("link request over the hourly limit", extra={"booking_id": str(booking.id)})
        return booking, False
    outbox.record_link_request(session, booking, now=now)
    log.info("current link requested", extra={"booking_id": str(booking.id), "version": booking.version})
    return booking, True
