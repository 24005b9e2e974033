"""Turning booking events into a plan: notify's copy of each booking, and one row per message to send."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.notify.calendar.planning import (
    COVERED_BY_COURSE_INVITE,
    bump_feeds,
    invite_row,
    plan_link_invite,
)
from services.notify.dispatch import due_rows
from services.notify.models import (
    CANCELLED,
    COURSE_INVITE,
    EMAIL,
    INVITE,
    PENDING,
    PLANNED,
    SKIPPED,
    SMS,
    WAITING_FOR_JOIN_LINK,
    BookingCopy,
    JoinLink,
    Message,
    insert_messages,
)
from services.notify.protocols import (
    BOOKED,
    COURSE_STEP_PREFIX,
    END,
    EVENT_ANCHORS,
    LINK_STEP_PREFIX,
    RESCHEDULED,
    START,
    Protocol,
    ProtocolBook,
    Step,
)
from services.notify.protocols import CANCELLED as ON_CANCELLED
from shared import events
from shared.db import dialect_insert, rowcount
from shared.timeutil import local_to_utc, to_zone

log = logging.getLogger(__name__)

_ANCHORS = {
    events.BOOKING_CONFIRMED: (BOOKED, START, END),
    events.BOOKING_RESCHEDULED: (RESCHEDULED, START, END),
    events.BOOKING_CANCELLED: (ON_CANCELLED,),
}
_SNAPSHOT_SCHEMA = events.BookingSnapshotSchema()


@dataclass(frozen=True)
class Applied:
    """What applying an event did."""

    booking_id: uuid.UUID
    stale: bool
    planned: int = 0
    cancelled: int = 0
    copy: BookingCopy | None = None  # the copy as applied, locked (None when stale)
    join_link: JoinLink | None = None  # the copy's version's join links, if they came before the event


def lock_booking(session: Session, booking_id: uuid.UUID) -> BookingCopy | None:
    """Notify's copy of a booking, locked for update until the transaction ends."""
    query = select(BookingCopy).where(BookingCopy.id == booking_id).with_for_update()
    found: BookingCopy | None = session.scalars(query.execution_options(populate_existing=True)).first()
    return found


def quiet_end(moment: datetime, tz: str, quiet: tuple[time, time] | None) -> datetime | None:
    """When the quiet hours around ``moment`` end in zone ``tz`` (UTC), or None when it is not quiet."""
    if quiet is None:
        return None
    start, end = quiet
    local = to_zone(moment, tz)
    at = local.time().replace(tzinfo=None)
    day = local.date()
    if start > end:  # the usual case, across midnight (21:00-08:00)
        if at >= start:
            return local_to_utc(day + timedelta(days=1), end, tz)
        if at < end:
            return local_to_utc(day, end, tz)
        return None
    if start <= at < end:
        return local_to_utc(day, end, tz)
    return None


def respect_quiet_hours(
    *, due_at: datetime, tz: str, quiet: tuple[time, time] | None, deadline: datetime
) -> datetime:
    """``due_at`` moved to the end of quiet hours, unless that would be after ``deadline`` (then at once)."""
    ends = quiet_end(due_at, tz, quiet)
    if ends is None or ends >= deadline:
        return due_at
    return ends


def quiet_deadline(*, due_at: datetime, expires_at: datetime, start: datetime) -> datetime:
    """The latest a non-urgent SMS may wait for quiet hours: before the visit, or before it expires after."""
    return min(expires_at, start) if due_at < start else expires_at


def _copy_fields(event: events.BookingEvent) -> dict[str, Any]:
    snap = event.booking
    return {
        "version": snap.version,
        "provider_id": snap.provider.id,
        "status": snap.status,
        "start_at": snap.start,
        "end_at": snap.end,
        "protocol": snap.appointment_type.reminder_protocol,
        "changed_at": event.occurred_at,
        "snapshot": {
            **_SNAPSHOT_SCHEMA.dump(snap),
            "previous_start": event.previous.start.isoformat() if event.previous else None,
            "cancelled_by": event.cancelled_by,
            "escort_at": event.occurred_at.isoformat(),  # which escort change the copy holds (escorts.py)
        },
    }


def apply_booking_event(
    *,
    session: Session,
    book: ProtocolBook,
    event: events.BookingEvent,
    quiet: tuple[time, time] | None,
    now: datetime,
    invites: bool = True,
) -> Applied:
    """Bring notify's copy of the booking up to ``event`` and plan its messages (in the caller's session)."""
    snap = event.booking
    stored = _store_copy(session, event, now)
    if stored is None:
        return Applied(booking_id=snap.id, stale=True)
    copy, providers = stored
    # A first version has no older rows to cancel (most events: a new booking's confirmation).
    cancelled = _cancel_older(session, snap, now) if snap.version > 1 else 0
    protocol = book.get(copy.protocol)
    # Read once here: the plan needs it, and so does the claim of the event's inline batch (jobs.py).
    join = session.get(JoinLink, (copy.id, copy.version))
    rows = plan_rows(
        copy=copy,
        protocol=protocol,
        anchors=_ANCHORS[event.type],
        session=session,
        quiet=quiet,
        now=now,
        link_ready=join is not None,
    )
    if event.course_change is not None:
        cover_by_course(rows, protocol)
    if invites:
        invite = invite_row(copy=copy, protocol=protocol, step=INVITE, due_at=copy.changed_at, now=now)
        if event.course_change is not None and invite["status"] == PLANNED:
            # The course's one email to the provider carries this session's calendar (calendar/planning.py).
            invite["status"], invite["reason"] = SKIPPED, COVERED_BY_COURSE_INVITE
        rows.append(invite)
    insert_messages(session, rows)
    bump_feeds(session, providers, now)
    log.info(
        "planned %d messages for %s",
        len(rows),
        event.type,
        extra={"booking_id": str(snap.id), "version": snap.version, "cancelled": cancelled},
    )
    return Applied(
        booking_id=snap.id, stale=False, planned=len(rows), cancelled=cancelled, copy=copy, join_link=join
    )


def _store_copy(
    session: Session, event: events.BookingEvent, now: datetime
) -> tuple[BookingCopy, set[int]] | None:
    """The booking's copy brought up to ``event``, locked, with its providers; None when it was as new."""
    snap = event.booking
    fields = _copy_fields(event)
    inserted = (
        session.execute(
            dialect_insert(session, BookingCopy)
            .values(id=snap.id, updated_at=now, **fields)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(BookingCopy.id)
        ).first()
        is not None
    )
    copy = lock_booking(session, snap.id)
    assert copy is not None
    providers = {snap.provider.id, copy.provider_id}  # the copy's, before it changes (the same, today)
    if not inserted:
        if copy.version >= snap.version:
            log.info(
                "ignored an event older than the booking copy",
                extra={"booking_id": str(snap.id), "version": snap.version, "stored_version": copy.version},
            )
            return None
        for name, value in fields.items():
            setattr(copy, name, value)
        copy.updated_at = now
    return copy, providers


def _cancel_older(session: Session, snap: events.BookingSnapshot, now: datetime) -> int:
    """Cancel the messages still pending for the booking's older versions; how many."""
    reason = (
        "the booking was cancelled"
        if snap.status == CANCELLED
        else f"the booking was moved (now version {snap.version})"
    )
    return rowcount(
        session.execute(
            update(Message)
            .where(
                Message.booking_id == snap.id,
                Message.booking_version < snap.version,
                Message.status.in_(PENDING),
                # A whole-course message tells of every session as it is when it goes (course_messages.py),
                # and a link sent again carries the newest link (link_messages.py).
                Message.step.not_like(f"{COURSE_STEP_PREFIX}%"),
                Message.step.not_like(f"{LINK_STEP_PREFIX}%"),
                Message.step != COURSE_INVITE,
            )
            .values(status=CANCELLED, reason=reason, blocked_on=None, updated_at=now)
        )
    )


def cover_by_course(rows: list[dict[str, Any]], protocol: Protocol) -> None:
    """Skip the session's own confirmation or notice: the course's one message tells of it."""
    for row in rows:
        step = protocol.step(row["step"])
        if step is not None and step.on in EVENT_ANCHORS and row["status"] == PLANNED:
            row["status"], row["reason"] = SKIPPED, "covered by the course's one message"


def replan_booking(
    *,
    session: Session,
    book: ProtocolBook,
    booking_id: uuid.UUID,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> int | None:
    """Plan the current version's reminders that have no row yet (a step added to the protocol since, a row
    lost); rows already planned, sent or skipped stay as they are. Returns how many were added, None if notify
    never saw the booking."""
    copy = lock_booking(session, booking_id)
    if copy is None:
        return None
    if copy.status == CANCELLED:
        return 0
    rows = plan_rows(
        copy=copy,
        protocol=book.get(copy.protocol),
        anchors=(START, END),
        session=session,
        quiet=quiet,
        now=now,
    )
    if not rows:
        return 0
    added = insert_messages(session, rows)
    log.info("re-planned reminders", extra={"booking_id": str(booking_id), "added": len(added)})
    return len(added)


def has_join_link(session: Session, booking_id: uuid.UUID, version: int) -> bool:
    """Whether the consult service's links for this booking version have arrived."""
    return session.get(JoinLink, (booking_id, version)) is not None


def plan_rows(
    *,
    copy: BookingCopy,
    protocol: Protocol,
    anchors: tuple[str, ...],
    session: Session,
    quiet: tuple[time, time] | None,
    now: datetime,
    link_ready: bool | None = None,
) -> list[dict[str, Any]]:
    """The message rows of ``copy``'s current version for the steps anchored at ``anchors``
    (``link_ready``: whether its join links are here, when the caller knows; else read if a step needs it)."""
    patient = copy.snapshot["patient"]
    mode = copy.snapshot["appointment_type"]["mode"]
    rows = []
    for step in protocol.steps_on(anchors, mode):
        if step.about_escort:
            continue  # planned per escort (escorts.py)
        if step.join_link and link_ready is None:
            link_ready = has_join_link(session, copy.id, copy.version)
        for channel in step.channels:
            rows.append(
                plan_row(
                    copy=copy,
                    protocol=protocol,
                    step=step,
                    channel=channel,
                    patient=patient,
                    link_ready=bool(link_ready),
                    quiet=quiet,
                    now=now,
                )
            )
    return rows


def plan_row(
    *,
    copy: BookingCopy,
    protocol: Protocol,
    step: Step,
    channel: str,
    patient: dict[str, Any],
    link_ready: bool,
    quiet: tuple[time, time] | None,
    now: datetime,
    happened_at: datetime | None = None,
) -> dict[str, Any]:
    """One plan row of ``step`` on ``channel``; a step due before ``happened_at`` (the booking) is skipped."""
    booked_at = happened_at or copy.changed_at
    due_at = step.due_at(start=copy.start_at, end=copy.end_at, happened_at=booked_at)
    expires_at = step.expires_at(due_at=due_at, start=copy.start_at, end=copy.end_at)
    status, reason = PLANNED, ""
    if not step.on_event and due_at <= booked_at:
        if step.always:
            due_at = booked_at
        else:
            status, reason = SKIPPED, "its moment had passed when the booking was made"
    if status == PLANNED and max(due_at, now) > expires_at:
        status, reason = SKIPPED, "too late: the moment it was useful had passed"
    if status == PLANNED and channel == SMS:
        status, reason, due_at = _sms_plan(
            step=step, patient=patient, due_at=due_at, expires_at=expires_at, start=copy.start_at, quiet=quiet
        )
    assert channel in (SMS, EMAIL)
    return {
        "booking_id": copy.id,
        "booking_version": copy.version,
        "step": step.key,
        "channel": channel,
        "protocol": protocol.slug,
        "protocol_version": protocol.version,
        "urgent": step.urgent,
        "due_at": due_at,
        "expires_at": expires_at,
        "status": status,
        "reason": reason,
        "blocked_on": WAITING_FOR_JOIN_LINK
        if status == PLANNED and step.join_link and not link_ready
        else None,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _sms_plan(
    *,
    step: Step,
    patient: dict[str, Any],
    due_at: datetime,
    expires_at: datetime,
    start: datetime,
    quiet: tuple[time, time] | None,
) -> tuple[str, str, datetime]:
    """An SMS row's status, reason and due time: skipped without number or consent, else past quiet hours."""
    if not patient.get("phone"):
        return SKIPPED, "the patient gave no mobile number", due_at
    if not patient.get("sms_consent"):
        return SKIPPED, "the patient did not consent to SMS", due_at
    if not step.urgent:
        deadline = quiet_deadline(due_at=due_at, expires_at=expires_at, start=start)
        due_at = respect_quiet_hours(due_at=due_at, tz=patient["time_zone"], quiet=quiet, deadline=deadline)
    return PLANNED, "", due_at


def apply_links_ready(
    *,
    session: Session,
    event: events.LinksReadyEvent,
    now: datetime,
    book: ProtocolBook | None = None,
) -> int:
    """Store a booking version's join links, release the messages that were waiting for them, and (given the
    protocols ``book``) plan the provider's updated invite."""
    # The booking first: the same lock order as the event handler and the send claims.
    copy = lock_booking(session, event.booking_id)
    values = {
        "patient_url": event.patient_join_url,
        "provider_url": event.provider_join_url,
        "opens_at": event.opens_at,
        "closes_at": event.closes_at,
        "received_at": now,
    }
    session.execute(
        dialect_insert(session, JoinLink)
        .values(booking_id=event.booking_id, booking_version=event.booking_version, **values)
        .on_conflict_do_update(index_elements=["booking_id", "booking_version"], set_=values)
    )
    released = rowcount(
        session.execute(
            update(Message)
            .where(
                Message.booking_id == event.booking_id,
                Message.booking_version == event.booking_version,
                Message.status == PLANNED,
                Message.blocked_on == WAITING_FOR_JOIN_LINK,
            )
            .values(blocked_on=None, updated_at=now)
        )
    )
    invite = book is not None and plan_link_invite(
        session=session, book=book, copy=copy, event=event, now=now
    )
    if copy is not None and copy.version == event.booking_version:
        bump_feeds(session, {copy.provider_id}, now)  # the feed shows the provider's join link
    log.info(
        "join links stored",
        extra={
            "booking_id": str(event.booking_id),
            "version": event.booking_version,
            "released": released,
            "invite_update": invite,
        },
    )
    return released


def due_now(session: Session, booking_id: uuid.UUID, now: datetime) -> list[Any]:
    """(id, step, urgent) of this booking's messages that are due and free to go."""
    return due_rows(session, Message.booking_id == booking_id, Message.due_at <= now)
