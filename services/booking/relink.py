"""Sending a booking's current manage link again, asked for from an older or cancelled booking's link, and a
course's page link again, asked for from an expired one."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.booking import outbox
from services.booking.courses import service as courses
from services.booking.models import Booking, Course, OutboxEvent
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
    return booking, _ask(session=session, booking=booking, per_hour=per_hour, now=now or utcnow())


def request_course_link(
    *, session: Session, signer: links.LinkSigner, token: str, per_hour: int, now: datetime | None = None
) -> tuple[Course, bool]:
    """Ask notify to send the page link of the course ``token`` names (expired or not); the course, and
    whether it was.

    The same rules as a booking's link: ``per_hour`` asks an hour (counted on the course's last session, which
    the request names), nothing once even the current link has expired, nothing for a stopped course, one
    answer for the caller whatever happened. 404 for a forged token.
    """
    course = courses.course_for_link(session=session, signer=signer, token=token, allow_expired=True)
    if course.stopped_at is not None:
        return course, False  # its page says so: there is no course to go back to
    # The last session's end is the course's, so notify signs the link from that booking alone.
    last = max(course.sessions, key=lambda b: (b.end_at, b.course_index or 0))
    return course, _ask(session=session, booking=last, per_hour=per_hour, now=now or utcnow(), course=course)


def _ask(
    *, session: Session, booking: Booking, per_hour: int, now: datetime, course: Course | None = None
) -> bool:
    """Record the request for ``booking`` (or its ``course``) unless over the limit or too late; whether it
    was."""
    # The booking row's lock orders concurrent asks, so the count below cannot be passed twice.
    session.execute(select(Booking.id).where(Booking.id == booking.id).with_for_update())
    if now >= booking.end_at + links.MANAGE_LINK_GRACE:
        return False  # the current link would not open either
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
        return False
    outbox.record_link_request(session, booking, now=now, course_id=course.id if course else None)
    log.info("current link requested", extra={"booking_id": str(booking.id), "version": booking.version})
    return True
