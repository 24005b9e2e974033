"""Escorts: who takes the patient home after a session; given at booking, by manage link or by staff."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.booking import outbox
from services.booking.models import Booking, Escort
from shared import events
from shared.problems import Conflict, NotFound, field_error
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

NOT_NEEDED = "not_needed"
MISSING = "missing"  # the type requires one and none is given yet ("escort needed")
UNCONFIRMED = "unconfirmed"
CONFIRMED = "confirmed"
SMS = "sms"
STAFF = "staff"


@dataclass(frozen=True)
class EscortStatus:
    """A booking's escort state, with the escort as events carry it (None: not given)."""

    booking_id: uuid.UUID
    state: str
    escort: events.EscortRef | None

    @property
    def confirmed_at(self) -> datetime | None:
        return self.escort.confirmed_at if self.escort else None

    @property
    def confirmed_how(self) -> str | None:
        return self.escort.confirmed_how if self.escort else None


def first_name(name: str) -> str:
    """The first word of a name (the whole name if it has no word)."""
    return (name.split() or [name])[0][:100]


def status(booking: Booking) -> EscortStatus:
    """Whether the booking needs an escort, has none, has one unconfirmed or confirmed."""
    ref = outbox.escort_ref(booking)
    if ref is None:
        state = MISSING if booking.appointment_type.requires_escort else NOT_NEEDED
    else:
        state = CONFIRMED if ref.confirmed_at is not None else UNCONFIRMED
    return EscortStatus(booking.id, state, ref)


def _new_row(booking: Booking, details: dict[str, Any], now: datetime) -> Escort:
    return Escort(
        booking_id=booking.id,
        escort_id=uuid.uuid4(),
        first_name=details["first_name"],
        phone=details["phone"],
        patient_first_name=details.get("patient_first_name") or first_name(booking.patient.name),
        agreed_at=now,
        created_at=now,
        updated_at=now,
    )


def _check_type(booking: Booking) -> None:
    if not booking.appointment_type.requires_escort:
        raise field_error("escort", "this appointment type does not take an escort")


def add_at_booking(session: Session, booking: Booking, details: dict[str, Any] | None) -> None:
    """Store the escort given with a new booking (before its ``booking.confirmed`` event is recorded)."""
    if details is None:
        set_committed_value(booking, "escort", None)  # known empty: no query when the event is built
        return
    _check_type(booking)
    row = _new_row(booking, details, utcnow())
    session.add(row)
    set_committed_value(booking, "escort", row)


def _locked(session: Session, booking_id: uuid.UUID) -> Booking:
    """The booking, its row locked against a concurrent change of its escort; 404 / 409 if not changeable."""
    # Columns only: the booking's joined relationships cannot be locked with it on PostgreSQL.
    locked = session.execute(select(Booking.id).where(Booking.id == booking_id).with_for_update()).first()
    booking = session.get(Booking, booking_id) if locked else None
    if booking is None:
        raise NotFound(f"No booking {booking_id}.")
    if booking.status != "confirmed":
        raise Conflict("The booking is cancelled.", slug="booking-cancelled")
    if booking.end_at <= utcnow():
        raise Conflict("This appointment has already taken place.", slug="booking-past")
    return booking


def _changed(session: Session, booking: Booking, row: Escort | None, what: str) -> EscortStatus:
    session.flush()
    set_committed_value(booking, "escort", row)
    outbox.record_event(session, booking, events.BOOKING_ESCORT_CHANGED)
    log.info("escort %s", what, extra={"booking_id": str(booking.id)})
    return status(booking)


def set_escort(*, session: Session, booking_id: uuid.UUID, details: dict[str, Any]) -> EscortStatus:
    """Give or change a booking's escort; a new phone is a new escort (new id, not confirmed)."""
    booking = _locked(session, booking_id)
    _check_type(booking)
    row = session.get(Escort, booking_id)
    if row is None:
        row = _new_row(booking, details, utcnow())
        session.add(row)
        return _changed(session, booking, row, "given")
    names = (details["first_name"], details.get("patient_first_name") or row.patient_first_name)
    if details["phone"] == row.phone and names == (row.first_name, row.patient_first_name):
        return status(booking)  # the same escort again: nothing changed, nothing to tell
    if details["phone"] != row.phone:
        now = utcnow()
        row.escort_id, row.phone, row.created_at, row.agreed_at = uuid.uuid4(), details["phone"], now, now
        row.confirmed_at = row.confirmed_how = row.confirmed_version = None
    row.first_name, row.patient_first_name = names
    return _changed(session, booking, row, "changed")


def remove_escort(*, session: Session, booking_id: uuid.UUID) -> EscortStatus:
    """Remove a booking's escort (removing none changes nothing)."""
    booking = _locked(session, booking_id)
    row = session.get(Escort, booking_id)
    if row is None:
        return status(booking)
    session.delete(row)
    return _changed(session, booking, None, "removed")


def confirm_by_staff(*, session: Session, booking_id: uuid.UUID) -> EscortStatus:
    """Record that staff confirmed the escort by phone (for the booking's current version)."""
    booking = _locked(session, booking_id)
    row = session.get(Escort, booking_id)
    if row is None:
        raise Conflict("This booking has no escort to confirm.", slug="no-escort")
    if row.confirmed_at is not None and row.confirmed_version == booking.version:
        return status(booking)
    row.confirmed_at, row.confirmed_how, row.confirmed_version = utcnow(), STAFF, booking.version
    return _changed(session, booking, row, "confirmed by staff")


def apply_reply(session: Session, booking: Booking, event: events.SmsReplyEvent) -> str:
    """Apply an escort's YES to the locked, current booking: ``applied``, ``kept`` or ``stale``."""
    row = session.get(Escort, booking.id, with_for_update=True)
    if row is None or row.created_at > event.replied_at:
        # Removed, or replaced after the reply came: the YES was another escort's.
        log.info("escort reply for an escort no longer given", extra={"booking_id": str(booking.id)})
        return "stale"
    if row.confirmed_at is not None and row.confirmed_version == booking.version:
        return "kept"
    row.confirmed_at, row.confirmed_how, row.confirmed_version = event.replied_at, SMS, booking.version
    _changed(session, booking, row, "confirmed by sms")
    return "applied"
