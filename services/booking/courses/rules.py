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
    """The template's rules; sessions never overlap each other, whatever the template's minimum says."""
    kind = template.session_type
    return Spacing(
        sessions=template.sessions,
        min_gap=max(timedelta(hours=template.min_hours_between), hold_length(kind)),
        max_per_week=template.max_per_week,
        within=None if template.within_days is None else timedelta(days=template.within_days),
        length=timedelta(minutes=kind.duration_minutes),
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
