"""Booking events applied to the consultation record: the latest version wins, whatever the arrival order."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.consult import rooms
from services.consult.models import CANCELLED, CONFIRMED, Consultation
from shared import events
from shared.db import is_unique_violation
from shared.links import new_secret
from shared.timeutil import utcnow

log = logging.getLogger(__name__)


def apply_booking_event(
    *, session: Session, event: events.BookingEvent, opens_before: timedelta, closes_after: timedelta
) -> str:
    """Bring the booking's consultation to the event's version; say what happened.

    Older versions than the one stored are ignored (events may arrive out of order); a new version
    replaces the window, issues new links (to be published) and makes the old rooms due at once.
    """
    booking = event.booking
    if booking.appointment_type.mode != events.VIDEO:
        return "not-video"
    now = utcnow()
    consultation = _locked(session, booking.id)
    created = consultation is None
    if consultation is None:
        consultation = Consultation(
            booking_id=booking.id, participant_key=secrets.token_hex(8), created_at=now
        )
        _fill(consultation, event, opens_before, closes_after, now)
        nested = session.begin_nested()
        try:
            session.add(consultation)
            nested.commit()
        except IntegrityError as exc:
            # Another event of the same booking recorded it a moment ago: compare versions with that one.
            nested.rollback()
            if not is_unique_violation(exc):
                raise
            created = False
            consultation = _locked(session, booking.id)
            assert consultation is not None
    if not created:
        if booking.version <= consultation.version:
            log.info(
                "stale booking event ignored",
                extra={
                    "booking_id": str(booking.id),
                    "version": booking.version,
                    "stored_version": consultation.version,
                },
            )
            return "stale"
        _fill(consultation, event, opens_before, closes_after, now)
    session.flush()
    cancelled = consultation.status == CANCELLED
    rooms.mark_due(
        session=session, booking_id=booking.id, below_version=None if cancelled else booking.version, now=now
    )
    log.info(
        "consultation %s",
        "cancelled" if cancelled else "recorded",
        extra={"booking_id": str(booking.id), "version": booking.version},
    )
    return "cancelled" if cancelled else "recorded"


def _locked(session: Session, booking_id: uuid.UUID) -> Consultation | None:
    # FOR UPDATE: two events of one booking handled at once must not both decide from the old version.
    return session.scalar(select(Consultation).where(Consultation.booking_id == booking_id).with_for_update())


def _fill(
    consultation: Consultation,
    event: events.BookingEvent,
    opens_before: timedelta,
    closes_after: timedelta,
    now: datetime,
) -> None:
    booking = event.booking
    consultation.version = booking.version
    consultation.link_secret = new_secret()  # the older version's links stop opening anything
    consultation.status = booking.status
    consultation.start_at, consultation.end_at = booking.start, booking.end
    consultation.opens_at = booking.start - opens_before
    consultation.closes_at = booking.end + closes_after
    consultation.patient_time_zone = booking.patient.time_zone
    consultation.provider_time_zone = booking.provider.time_zone
    consultation.correlation_id = event.correlation_id[:64]
    consultation.updated_at = now
    if booking.status == CONFIRMED:
        consultation.links_event_id = uuid.uuid4()
        consultation.links_issued_at = now
    else:
        consultation.links_event_id = None
        consultation.links_issued_at = None
    consultation.links_published_at = None
