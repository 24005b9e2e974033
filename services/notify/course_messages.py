"""One message for a whole-course change: the course's confirmation, or one notice for cancelling or moving
several of its sessions, instead of one per session.

The booking service records a ``course.changed`` event in the transaction that changes the sessions, and each
session's own event carries its id (``course_change``). Events arrive in any order and more than once, so the
``course_notices`` row is created by whichever comes first and locked by each (before any booking copy, the
one lock order); the message rows are planned, once, when the course event and every session it lists at
its version have arrived. They hang on the first listed session (its plan rows, retries, outbox page) and
are rendered when claimed, from the newest copies of the sessions, like every message.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notify.models import (
    COURSE_INVITE,
    EMAIL,
    PLANNED,
    SKIPPED,
    SMS,
    BookingCopy,
    CourseNotice,
    Message,
    insert_messages,
)
from services.notify.planning import quiet_deadline, respect_quiet_hours
from services.notify.protocols import (
    COURSE_BOOKED,
    COURSE_CANCELLED,
    COURSE_RESCHEDULED,
    COURSE_STEP_PREFIX,
    DEFAULT_PROTOCOL,
    Protocol,
    ProtocolBook,
    Step,
)
from shared import events
from shared.db import dialect_insert
from shared.timeutil import format_local, to_zone

log = logging.getLogger(__name__)

_ANCHOR_OF = {
    events.COURSE_BOOKED: COURSE_BOOKED,
    events.COURSE_CANCELLED: COURSE_CANCELLED,
    events.COURSE_RESCHEDULED: COURSE_RESCHEDULED,
}


def is_course_step(step: str) -> bool:
    """Whether a plan row is a whole-course message (not bound to its anchor session's version)."""
    return step.startswith(COURSE_STEP_PREFIX) or step == COURSE_INVITE


def hold(session: Session, event_id: uuid.UUID, now: datetime) -> CourseNotice:
    """The notice of course event ``event_id``, created if this is the first event naming it, and locked."""
    session.execute(
        dialect_insert(session, CourseNotice)
        .values(event_id=event_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["event_id"])
    )
    query = select(CourseNotice).where(CourseNotice.event_id == event_id).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one()


def apply_course_event(
    *,
    session: Session,
    book: ProtocolBook,
    event: events.CourseEvent,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> uuid.UUID | None:
    """Record a ``course.changed`` event; return the anchor session if its message rows were planned now."""
    notice = hold(session, event.event_id, now)
    notice.course_id, notice.change, notice.cancelled_by = event.course_id, event.change, event.cancelled_by
    notice.occurred_at = event.occurred_at
    notice.sessions = [
        {"booking_id": str(s.booking_id), "index": s.index, "version": s.version} for s in event.sessions
    ]
    return plan_if_ready(session=session, book=book, notice=notice, quiet=quiet, now=now)


def _copies(session: Session, notice: CourseNotice) -> dict[str, BookingCopy]:
    ids = [uuid.UUID(s["booking_id"]) for s in notice.sessions or []]
    query = select(BookingCopy).where(BookingCopy.id.in_(ids)).execution_options(populate_existing=True)
    return {str(c.id): c for c in session.scalars(query)}


def plan_if_ready(
    *,
    session: Session,
    book: ProtocolBook,
    notice: CourseNotice,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> uuid.UUID | None:
    """Plan the notice's message rows once every event it needs is here; the anchor session, or None."""
    if notice.planned_at is not None or notice.sessions is None or notice.change is None:
        return None
    copies = _copies(session, notice)
    for listed in notice.sessions:
        copy = copies.get(listed["booking_id"])
        if copy is None or copy.version < listed["version"]:
            return None  # that session's event has not arrived yet: it plans the rows when it does
    first = notice.sessions[0]
    anchor = copies[first["booking_id"]]
    protocol, steps = _steps(book, anchor.protocol, _ANCHOR_OF[notice.change])
    ends = max(copies[s["booking_id"]].end_at for s in notice.sessions)
    rows = [
        _row(anchor, first["version"], notice, protocol, step, channel, ends, quiet, now)
        for step in steps
        for channel in step.channels
    ]
    insert_messages(session, rows)
    notice.anchor_id, notice.anchor_version, notice.planned_at = anchor.id, first["version"], now
    log.info(
        "planned %d course messages",
        len(rows),
        extra={"event_id": str(notice.event_id), "booking_id": str(anchor.id), "change": notice.change},
    )
    return anchor.id


def _steps(book: ProtocolBook, slug: str, anchor: str) -> tuple[Protocol, list[Step]]:
    """The session protocol's steps for this course change, else the default protocol's."""
    protocol = book.get(slug)
    steps = [s for s in protocol.steps if s.on == anchor]
    if not steps:
        protocol = book.get(DEFAULT_PROTOCOL)
        steps = [s for s in protocol.steps if s.on == anchor]
    if not steps:
        log.warning("no protocol has a step for %s", anchor, extra={"protocol": slug})
    return protocol, steps


def _row(
    anchor: BookingCopy,
    version: int,
    notice: CourseNotice,
    protocol: Protocol,
    step: Step,
    channel: str,
    ends: datetime,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> dict[str, Any]:
    """One message row of a course notice, on the anchor session at the version the change left it."""
    patient = anchor.snapshot["patient"]
    due_at = notice.occurred_at or now
    status, reason = PLANNED, ""
    if max(due_at, now) > ends:
        status, reason = SKIPPED, "too late: the moment it was useful had passed"
    elif channel == SMS and not patient.get("phone"):
        status, reason = SKIPPED, "the patient gave no mobile number"
    elif channel == SMS and not patient.get("sms_consent"):
        status, reason = SKIPPED, "the patient did not consent to SMS"
    elif channel == SMS and not step.urgent:
        deadline = quiet_deadline(due_at=due_at, expires_at=ends, start=anchor.start_at)
        due_at = respect_quiet_hours(due_at=due_at, tz=patient["time_zone"], quiet=quiet, deadline=deadline)
    assert channel in (SMS, EMAIL)
    return {
        "booking_id": anchor.id,
        "booking_version": version,
        "step": step.key,
        "channel": channel,
        "protocol": protocol.slug,
        "protocol_version": protocol.version,
        "urgent": step.urgent,
        "due_at": due_at,
        "expires_at": ends,
        "status": status,
        "reason": reason,
        "blocked_on": None,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def render_extra(session: Session, row: Message) -> dict[str, Any]:
    """What a course message's templates say of the course: every session it is about, as it is now."""
    notice = session.scalars(
        select(CourseNotice).where(
            CourseNotice.anchor_id == row.booking_id, CourseNotice.anchor_version == row.booking_version
        )
    ).first()
    if notice is None or notice.sessions is None:
        raise LookupError(f"message {row.id} belongs to no course notice")
    copies = _copies(session, notice)
    listed = [copies[s["booking_id"]] for s in notice.sessions]
    return {"course_change": notice.change, "course_sessions": [session_line(c) for c in listed]}


def session_line(copy: BookingCopy) -> dict[str, Any]:
    """One session as a course message lists it, in the clinic's zone: "session 3 of 6", when, status."""
    snap = copy.snapshot
    course = snap.get("course") or {"index": 1, "sessions": 1}
    previous = snap.get("previous_start")
    return session_entry(
        start_at=copy.start_at,
        tz=snap["clinic"]["time_zone"],
        index=int(course["index"]),
        count=int(course["sessions"]),
        previous_start=datetime.fromisoformat(previous) if previous else None,
        cancelled=copy.status == "cancelled",
    )


def session_entry(
    *,
    start_at: datetime,
    tz: str,
    index: int,
    count: int,
    previous_start: datetime | None,
    cancelled: bool,
) -> dict[str, Any]:
    """What a course template sees of one session (also the preview's sample sessions)."""
    return {
        "label": f"session {index} of {count}" if index <= count else "booster session",
        "index": index,
        "count": count,
        "start": to_zone(start_at, tz),  # for a language's own date filters (when, day, clock)
        "when": format_local(start_at, tz),
        "short": short_when(start_at, tz),
        "previous_when": format_local(previous_start, tz) if previous_start else None,
        "previous": to_zone(previous_start, tz) if previous_start else None,
        "cancelled": cancelled,
    }


def short_when(moment: datetime, tz: str) -> str:
    """A session's time as an SMS lists it, in ``tz`` with its zone: ``Tue 3 Mar 10:00 EST``."""
    local = to_zone(moment, tz)
    return f"{local:%a} {local.day} {local:%b} {local:%H:%M} {local.tzname()}"
