"""Booking events applied to the check-in plan: the latest session version wins; the patient is re-planned."""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.checkins.models import (
    BOOKED,
    CANCELLED,
    CONFIRMED,
    ESCORT_CHANGED,
    ESCORT_CONFIRMED,
    ESCORT_GIVEN,
    MOVED,
    NO_ESCORT,
    PLANNED,
    Checkin,
    Patient,
    SessionChange,
    SessionCopy,
)
from services.checkins.plans import EACH, FIRST, LAST, Plan, PlanBook, PlanStep
from shared import events
from shared.db import dialect_insert
from shared.links import new_secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wanted:
    """A check-in the patient's sessions call for."""

    plan: Plan
    step: PlanStep
    key: str  # the step's key, numbered from its second occurrence on
    session: SessionCopy
    due_at: datetime
    expires_at: datetime


def apply_booking_event(
    *, session: Session, book: PlanBook, event: events.BookingEvent, now: datetime
) -> str:
    """Record the booking's new version and re-plan its patient; say what happened."""
    booking = event.booking
    if book.for_type(booking.appointment_type.slug) is None:
        return "no-plan"
    patient = _patient(session, event)
    record_change(session, patient, event)
    copy = session.scalar(select(SessionCopy).where(SessionCopy.booking_id == booking.id).with_for_update())
    if copy is not None and booking.version <= copy.version:
        return "stale"
    if copy is None:
        copy = SessionCopy(booking_id=booking.id, patient_id=patient.id)
        session.add(copy)
    copy.version, copy.status = booking.version, booking.status
    patient.language = booking.patient.language[:16]  # the newest version's, as booking's pages use
    copy.type_slug, copy.type_name = booking.appointment_type.slug, booking.appointment_type.name[:120]
    copy.provider_id = booking.provider.id
    copy.start_at, copy.end_at = booking.start, booking.end
    course = booking.course
    copy.course_index, copy.course_sessions = (course.index, course.sessions) if course else (None, None)
    copy.correlation_id = event.correlation_id[:64]
    copy.updated_at = now
    session.flush()
    changed = replan_patient(session=session, book=book, patient=patient, now=now)
    log.info("session recorded", extra={"booking_id": str(booking.id), "version": booking.version, **changed})
    return "recorded"


def _patient(session: Session, event: events.BookingEvent) -> Patient:
    ref = event.booking.patient
    patient = session.scalar(select(Patient).where(Patient.id == ref.id).with_for_update())
    if patient is None:
        patient = Patient(
            id=ref.id,
            clinic_slug=event.booking.clinic.slug,
            time_zone=ref.time_zone,
            language=ref.language[:16],
            timeline_secret=new_secret(),
        )
        session.add(patient)
        session.flush()
    else:
        patient.time_zone = ref.time_zone
    return patient


_KINDS = {
    events.BOOKING_CONFIRMED: BOOKED,
    events.BOOKING_RESCHEDULED: MOVED,
    events.BOOKING_CANCELLED: CANCELLED,
    events.BOOKING_ESCORT_CHANGED: ESCORT_CHANGED,
}


def record_change(session: Session, patient: Patient, event: events.BookingEvent) -> None:
    """Add the event to the patient's session history (whatever order events arrive in; never a name).

    Once: an event redelivered after the inbox forgot it (shared/inbox.py ``prune``) adds nothing.
    """
    booking, escort = event.booking, event.booking.escort
    state = NO_ESCORT if escort is None else ESCORT_CONFIRMED if escort.confirmed_at else ESCORT_GIVEN
    session.execute(
        dialect_insert(session, SessionChange)
        .values(
            event_id=event.event_id,
            patient_id=patient.id,
            booking_id=booking.id,
            version=booking.version,
            kind=_KINDS[event.type],
            occurred_at=event.occurred_at,
            start_at=booking.start,
            previous_start=event.previous.start if event.previous else None,
            cancelled_by=event.cancelled_by,
            escort=state,
            escort_confirmed_how=escort.confirmed_how if escort and escort.confirmed_at else None,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
    )


def is_booster(s: SessionCopy) -> bool:
    """Whether the session is a booster: a course session past the course's planned count."""
    return s.course_index is not None and s.course_sessions is not None and s.course_index > s.course_sessions


def _anchors(step: PlanStep, mine: list[SessionCopy]) -> list[tuple[SessionCopy, datetime | None]]:
    """The sessions ``step`` is timed from, each with the moment its repeats must end by (None: no bound)."""
    if step.anchor == EACH:
        return [(s, None) for s in mine]
    if step.anchor == FIRST:
        return [(s, None) for s in mine[:1]]
    if step.anchor == LAST:
        return [(s, None) for s in mine[-1:]]
    return [(s, after.start_at) for s, after in itertools.pairwise(mine) if is_booster(after)]


def _occurrences(step: PlanStep, base: datetime, until: datetime | None) -> list[tuple[int, datetime]]:
    """(occurrence number, due) of a step from ``base``; before a booster, each closes before it starts."""
    if until is None:
        every = step.every or step.window
        return [(n, base + step.offset + every * (n - 1)) for n in range(1, step.times + 1)]
    assert step.every is not None
    found, n = [], 1
    while (due := base + step.offset + step.every * (n - 1)) + step.window <= until and n <= 52:
        found.append((n, due))
        n += 1
    return found


def wanted_checkins(*, book: PlanBook, sessions: list[SessionCopy], now: datetime) -> list[Wanted]:
    """The check-ins these sessions (one patient's) call for, still answerable after ``now``."""
    confirmed = sorted((s for s in sessions if s.status == CONFIRMED), key=lambda s: s.start_at)
    found: list[Wanted] = []
    for plan in {p.slug: p for s in confirmed if (p := book.for_type(s.type_slug))}.values():
        mine = [s for s in confirmed if s.type_slug in plan.types]
        for step in plan.steps:
            for anchor, until in _anchors(step, mine):
                base = anchor.start_at if step.at == "start" else anchor.end_at
                for n, due in _occurrences(step, base, until):
                    expires = due + step.window
                    if expires > now:
                        found.append(
                            Wanted(plan, step, step.occurrence_key(n), anchor, max(due, now), expires)
                        )
    return found


def replan_patient(*, session: Session, book: PlanBook, patient: Patient, now: datetime) -> dict[str, int]:
    """Bring the patient's planned check-ins in line with their sessions; count what changed."""
    counts = {"added": 0, "moved": 0, "cancelled": 0}
    sessions = list(session.scalars(select(SessionCopy).where(SessionCopy.patient_id == patient.id)))
    wanted = (
        {}
        if patient.stopped_at
        else {
            (w.key, w.session.booking_id): w for w in wanted_checkins(book=book, sessions=sessions, now=now)
        }
    )
    stored = {
        (c.plan_step, c.booking_id): c
        for c in session.scalars(select(Checkin).where(Checkin.patient_id == patient.id).with_for_update())
    }
    for key, checkin in stored.items():
        if checkin.status != PLANNED:
            continue
        w = wanted.get(key)
        if w is None:
            checkin.status, checkin.updated_at = CANCELLED, now
            counts["cancelled"] += 1
        elif (checkin.due_at, checkin.expires_at, checkin.booking_version) != (
            w.due_at,
            w.expires_at,
            w.session.version,
        ):
            checkin.due_at, checkin.expires_at = w.due_at, w.expires_at
            checkin.booking_version, checkin.updated_at = w.session.version, now
            counts["moved"] += 1
    for key, w in wanted.items():
        if key not in stored:
            session.add(_new_checkin(patient.id, w, now))
            counts["added"] += 1
    return counts


def _new_checkin(patient_id: uuid.UUID, w: Wanted, now: datetime) -> Checkin:
    return Checkin(
        id=uuid.uuid4(),
        patient_id=patient_id,
        booking_id=w.session.booking_id,
        booking_version=w.session.version,
        plan=w.plan.slug,
        plan_step=w.key,
        instrument=w.step.instrument,
        due_at=w.due_at,
        expires_at=w.expires_at,
        status=PLANNED,
        link_secret=new_secret(),
        reminders=0,
        created_at=now,
        updated_at=now,
    )
