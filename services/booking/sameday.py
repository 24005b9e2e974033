"""One visit of a type a day per patient (issue 17 point 8): the claim a one-per-day type takes, and the
other visits of the same day a page warns of when the type allows them."""

from __future__ import annotations

from datetime import date

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.booking.models import Booking, PatientDayClaim
from shared.db import insert_of
from shared.problems import Conflict
from shared.timeutil import day_bounds_utc, local_date

SLUG = "same-day"
DETAIL = "You already have this kind of appointment on that day; please choose another day."


def _day(booking: Booking) -> date:
    return local_date(booking.start_at, booking.clinic.time_zone)


def others_that_day(session: Session, booking: Booking) -> int:
    """How many other confirmed visits of the booking's type its patient has on its day (the clinic's)."""
    start, end = day_bounds_utc(_day(booking), booking.clinic.time_zone)
    return int(
        session.scalar(
            select(func.count())
            .select_from(Booking)
            .where(
                Booking.patient_id == booking.patient_id,
                Booking.appointment_type_id == booking.appointment_type_id,
                Booking.status == "confirmed",
                Booking.start_at >= start,
                Booking.start_at < end,
                Booking.id != booking.id,
            )
        )
        or 0
    )


def claim(session: Session, booking: Booking) -> None:
    """For a one-per-day type, take the patient's day for ``booking``; 409 ``same-day`` if it is taken.

    The claim's key decides between two bookings made at once; the count covers visits booked before the
    type became one-per-day (they hold no claim).
    """
    if not booking.appointment_type.one_per_day:
        return
    table = PatientDayClaim.metadata.tables["patient_day_claims"]
    row = {
        "patient_id": booking.patient_id,
        "appointment_type_id": booking.appointment_type_id,
        "day": _day(booking),
        "booking_id": booking.id,
    }
    statement = insert_of(session.get_bind().dialect.name)(table).on_conflict_do_nothing()
    taken = session.connection().execute(statement.returning(table.c.day), [row]).first() is None
    if taken or others_that_day(session, booking):
        raise Conflict(
            DETAIL,
            slug=SLUG,
            errors={"json": {"start": ["this patient already has this kind of appointment on that day"]}},
        )


def release(session: Session, booking: Booking) -> None:
    """Give back the booking's day (cancelled, or moving)."""
    session.execute(delete(PatientDayClaim).where(PatientDayClaim.booking_id == booking.id))
