"""Attendance: whether the patient will come to a booking, from their SMS reply (notify's event) or staff."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.booking import escorts
from services.booking.models import CONFIRMED, DECLINED, UNCONFIRMED, Attendance, Booking
from services.booking.service import get_booking
from shared.events import ATTENDANCE_CONFIRMED, ESCORT_CONFIRMED, SmsReplyEvent
from shared.problems import Conflict
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

SMS = "sms"
PHONE = "phone"
STAFF = "staff"
SOURCES = (SMS, PHONE, STAFF)
# What a patient's own later word may replace; arrived and no-show are staff's record of the day.
_REPLACEABLE_BY_PATIENT = (UNCONFIRMED, DECLINED)


@dataclass(frozen=True)
class AttendanceView:
    """A booking's attendance as staff read it."""

    booking_id: uuid.UUID
    booking_version: int
    state: str
    source: str | None
    at: datetime | None


def current(booking: Booking, row: Attendance | None) -> AttendanceView:
    """The attendance of the booking's current version (a state recorded for an older one does not count)."""
    if row is None or row.booking_version != booking.version:
        return AttendanceView(booking.id, booking.version, UNCONFIRMED, None, None)
    return AttendanceView(booking.id, booking.version, row.state, row.source, row.at)


def get_attendance(*, session: Session, booking_id: uuid.UUID) -> AttendanceView:
    """The attendance of booking ``booking_id`` (404 if there is no such booking)."""
    booking = get_booking(session=session, booking_id=booking_id)
    return current(booking, session.get(Attendance, booking_id))


def _write(
    session: Session, booking: Booking, row: Attendance | None, *, state: str, source: str, at: datetime
) -> Attendance:
    if row is None:
        row = Attendance(booking_id=booking.id)
        session.add(row)
    row.booking_version, row.state, row.source, row.at = booking.version, state, source, at
    return row


def set_attendance(
    *, session: Session, booking_id: uuid.UUID, state: str, source: str = STAFF
) -> AttendanceView:
    """Record what staff know (a confirmation taken by phone, an arrival, a no-show); 409 if cancelled."""
    booking = get_booking(session=session, booking_id=booking_id)
    if booking.status != "confirmed":
        raise Conflict("The booking is cancelled.", slug="booking-cancelled")
    row = session.get(Attendance, booking_id, with_for_update=True)
    row = _write(session, booking, row, state=state, source=source, at=utcnow())
    session.flush()
    log.info("attendance set by staff", extra={"booking_id": str(booking_id), "state": state})
    return current(booking, row)


def apply_sms_reply(*, session: Session, event: SmsReplyEvent) -> str:
    """Apply what an SMS reply (the patient's, or the escort's YES) meant; the outcome.

    ``applied``, ``stale`` (the booking moved, was cancelled, or the escort changed), ``kept`` or ``unknown``.
    """
    # The booking row's lock orders this against a concurrent reschedule or cancel (columns only: no joins).
    locked = session.execute(
        select(Booking.id).where(Booking.id == event.booking_id).with_for_update()
    ).first()
    booking = session.get(Booking, event.booking_id) if locked else None
    if booking is None:
        return "unknown"
    if booking.status != "confirmed" or booking.version != event.booking_version:
        # The visit the reply was about moved or was cancelled since: notify already told the patient.
        log.info("sms reply for an outdated booking version", extra={"booking_id": str(booking.id)})
        return "stale"
    if event.meaning == ESCORT_CONFIRMED:
        return escorts.apply_reply(session, booking, event)
    if event.meaning != ATTENDANCE_CONFIRMED:
        return "unknown"
    row = session.get(Attendance, booking.id, with_for_update=True)
    same_version = row is not None and row.booking_version == booking.version
    if same_version and (row.state not in _REPLACEABLE_BY_PATIENT or row.at > event.replied_at):  # type: ignore[union-attr]
        return "kept"  # staff recorded something later, or the day's record: it stands
    _write(session, booking, row, state=CONFIRMED, source=SMS, at=event.replied_at)
    log.info("attendance confirmed by sms", extra={"booking_id": str(booking.id)})
    return "applied"
