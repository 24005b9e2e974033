"""The spacing rules of a course, checked whenever one of its sessions moves, by whichever route."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.booking.courses import planner
from services.booking.courses.planner import Spacing
from services.booking.models import Booking, Course, CourseTemplate
from services.booking.resources.service import hold_length
from shared.problems import field_error


def spacing_of(template: CourseTemplate) -> Spacing:
    """The template's rules, and the session type's that bind sessions of one course to each other.

    Whatever the template's minimum says, sessions never overlap each other: not in the chair (visit and
    recovery), nor in the provider's time (buffers included), so one provider may hold every session. A
    one-per-day type keeps them on different days in the clinic's zone (the patient's day claim); a type with
    a daily limit on different days in each provider's zone, so a day with a place left for the session
    never needs two (the plan books as proposed: issue 18, docs/courses.md).
    """
    kind = template.session_type
    provider_span = (
        kind.buffer_before_minutes
        + (kind.provider_minutes or kind.duration_minutes)
        + kind.buffer_after_minutes
    )
    zones: set[str] = set()
    if kind.one_per_day:
        zones.add(template.clinic.time_zone)
    if kind.daily_limit is not None:
        zones.update(p.time_zone for p in kind.providers)
    return Spacing(
        sessions=template.sessions,
        min_gap=max(
            timedelta(hours=template.min_hours_between), hold_length(kind), timedelta(minutes=provider_span)
        ),
        max_per_week=template.max_per_week,
        within=None if template.within_days is None else timedelta(days=template.within_days),
        length=timedelta(minutes=kind.duration_minutes),
        day_zones=tuple(sorted(zones)),
    )


def check_move(session: Session, booking: Booking, start: datetime) -> None:
    """422 naming the rule if moving course session ``booking`` to ``start`` breaks its template's spacing."""
    course = session.get(Course, booking.course_id)
    if course is None:
        return
    others = session.scalars(
        select(Booking.start_at).where(
            Booking.course_id == course.id, Booking.status == "confirmed", Booking.id != booking.id
        )
    ).all()
    starts = sorted([*others, start])
    spacing, tz = spacing_of(course.template), course.template.clinic.time_zone
    broken = planner.violation(spacing, starts, tz, starts.index(start))
    if broken is not None:
        raise field_error("start", f"{broken[1]} ({broken[0]})")
