"""Events of the booking service, written to the outbox table in the transaction of the change they report.

The relay (relay.py) moves them to the queues afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.booking.models import Booking, OutboxEvent
from shared import events
from shared.logging import get_correlation_id
from shared.metrics import BOOKINGS, count_after_commit

# What each event type counts as in suite_bookings_total{change=...}.
_CHANGE_OF = {
    events.BOOKING_CONFIRMED: "created",
    events.BOOKING_RESCHEDULED: "rescheduled",
    events.BOOKING_CANCELLED: "cancelled",
}
# session.info key: the ``course.changed`` event a whole-course change in this transaction will record.
_COURSE_CHANGE = "outbox.course_change"


def snapshot(booking: Booking) -> events.BookingSnapshot:
    """The booking as an event carries it."""
    t, p, c, pt = booking.appointment_type, booking.provider, booking.clinic, booking.patient
    return events.BookingSnapshot(
        id=booking.id,
        version=booking.version,
        status=booking.status,
        start=booking.start_at,
        end=booking.end_at,
        clinic=events.ClinicRef(
            slug=c.slug, name=c.name, time_zone=c.time_zone, address=c.address, phone=c.phone, id=c.id
        ),
        appointment_type=events.AppointmentTypeRef(
            id=t.id,
            slug=t.slug,
            name=t.name,
            mode=t.mode,
            duration_minutes=t.duration_minutes,
            reminder_protocol=t.reminder_protocol,
            location=t.location,
            change_cutoff_hours=t.change_cutoff_hours,
            requires_escort=t.requires_escort,
        ),
        provider=events.ProviderRef(id=p.id, name=p.name, email=p.email, time_zone=p.time_zone),
        patient=events.PatientRef(
            id=pt.id,
            name=pt.name,
            email=pt.email,
            phone=pt.phone,
            time_zone=pt.time_zone,
            sms_consent=pt.sms_consent,
            language=pt.language,
        ),
        course=_course(booking),
        escort=escort_ref(booking),
    )


def _course(booking: Booking) -> events.CourseRef | None:
    """Which session of which course the booking is, if it is one (no query for other bookings)."""
    if booking.course_id is None or booking.course_index is None:
        return None
    assert booking.course is not None
    return events.CourseRef(
        id=booking.course_id, index=booking.course_index, sessions=booking.course.template.sessions
    )


def escort_ref(booking: Booking) -> events.EscortRef | None:
    """The booking's escort as events carry it (a confirmation for an earlier version does not count)."""
    row = booking.escort
    if row is None:
        return None
    counts = row.confirmed_version == booking.version
    return events.EscortRef(
        id=row.escort_id,
        first_name=row.first_name,
        phone=row.phone,
        patient_first_name=row.patient_first_name,
        agreed_at=row.agreed_at,
        # Picked up when the session and the type's recovery (the chair's hold, resources/service.py) end.
        pickup_at=booking.end_at + timedelta(minutes=booking.appointment_type.recovery_minutes),
        confirmed_at=row.confirmed_at if counts else None,
        confirmed_how=row.confirmed_how if counts else None,
    )


def record_event(
    session: Session,
    booking: Booking,
    event_type: str,
    *,
    previous: events.TimeRange | None = None,
    cancelled_by: str | None = None,
) -> uuid.UUID:
    """Write ``event_type`` for ``booking`` as it is now to the outbox, in the caller's transaction.

    The row is inserted at once with a Core statement (it is on the path of every booking, and nothing in
    the request reads it back); the event's id is returned.
    """
    event = events.BookingEvent(
        type=event_type,
        booking=snapshot(booking),
        correlation_id=get_correlation_id(),
        previous=previous,
        cancelled_by=cancelled_by,
        course_change=session.info.get(_COURSE_CHANGE),
    )
    session.connection().execute(
        _INSERT,
        {
            "event_id": event.event_id,
            "event_type": event_type,
            "booking_id": booking.id,
            # From the booking's own typed columns; every consumer validates on load (docs/performance.md).
            "payload": events.dump_event(event, check=False),
        },
    )
    if event_type in _CHANGE_OF:  # an escort change is no change of the booking itself
        count_after_commit(session, BOOKINGS, change=_CHANGE_OF[event_type])
    return event.event_id


_INSERT = insert(OutboxEvent.metadata.tables["outbox"])


@contextmanager
def course_change(session: Session) -> Iterator[uuid.UUID]:
    """Mark the booking events recorded inside as covered by one ``course.changed`` event; yield its id."""
    event_id = uuid.uuid4()
    session.info[_COURSE_CHANGE] = event_id
    try:
        yield event_id
    finally:
        session.info.pop(_COURSE_CHANGE, None)


def record_course_event(
    session: Session,
    *,
    event_id: uuid.UUID,
    course_id: uuid.UUID,
    change: str,
    bookings: Sequence[Booking],
    cancelled_by: str | None = None,
) -> uuid.UUID:
    """Write ``course.changed`` for the sessions a whole-course change touched, in the caller's transaction.

    Its outbox row's ``booking_id`` is the course's id: the event is about no single booking.
    """
    event = events.CourseEvent(
        event_id=event_id,
        course_id=course_id,
        change=change,
        sessions=[
            events.CourseSession(booking_id=b.id, index=b.course_index or 0, version=b.version)
            for b in sorted(bookings, key=lambda b: b.course_index or 0)
        ],
        correlation_id=get_correlation_id(),
        cancelled_by=cancelled_by,
    )
    session.connection().execute(
        _INSERT,
        {
            "event_id": event.event_id,
            "event_type": events.COURSE_CHANGED,
            "booking_id": course_id,
            "payload": events.dump_event(event),
        },
    )
    return event.event_id


def record_link_request(
    session: Session, booking: Booking, *, now: datetime, course_id: uuid.UUID | None = None
) -> uuid.UUID:
    """Write ``booking.link_requested`` (ids only) to the outbox, in the caller's transaction; with
    ``course_id``, for that course's page link (``booking`` is its last session)."""
    event = events.LinkRequestedEvent(
        booking_id=booking.id,
        booking_version=booking.version,
        course_id=course_id,
        occurred_at=now,
        correlation_id=get_correlation_id(),
    )
    session.connection().execute(
        _INSERT,
        {
            "event_id": event.event_id,
            "event_type": event.type,
            "booking_id": booking.id,
            "payload": events.dump_event(event),
            "created_at": now,
        },
    )
    return event.event_id


def events_of(session: Session, booking_id: uuid.UUID) -> list[OutboxEvent]:
    """The events of a booking still in the outbox, oldest first.

    Published events are pruned after OUTBOX_RETENTION_DAYS, so an older booking's list starts later.
    """
    return list(
        session.scalars(
            select(OutboxEvent).where(OutboxEvent.booking_id == booking_id).order_by(OutboxEvent.seq)
        )
    )
