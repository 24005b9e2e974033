"""Calendars in notify's emails: the patient's ``appointment.ics`` and the provider's invites."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from icalendar import Event
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notify.calendar.entry import day_sheet_url, provider_event, short_name, summary
from services.notify.models import (
    CANCELLED,
    COURSE_INVITE,
    INVITE_STEPS,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    BookingCopy,
    CalendarInvite,
    CourseNotice,
    JoinLink,
    Message,
)
from services.notify.rendering import (
    FileAttachment,
    RenderedEmail,
    compose_email,
    message_id_for,
    message_key,
)
from services.notify.runtime import Runtime
from shared import ical, links
from shared.db import dialect_insert
from shared.events import VIDEO
from shared.timeutil import format_local, utcnow

log = logging.getLogger(__name__)

_ALIVE = (*PENDING, SENDING, SENT)
_STAMP_PLACEHOLDER = datetime(2000, 1, 1, tzinfo=UTC)
_TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).resolve().parents[1] / "templates" / "invites")),
    undefined=StrictUndefined,
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    trim_blocks=True,
    lstrip_blocks=True,
)


def is_invite(step: str) -> bool:
    """Whether a plan row is a provider calendar invite."""
    return step in INVITE_STEPS


def lock_record(session: Session, copy: BookingCopy, *, uid: str) -> CalendarInvite:
    """The booking's calendar record, created if missing, locked until the transaction ends."""
    # A claim may hold this record already, changed and not yet flushed (two invites of one booking in one
    # batch): flush, so re-reading it below (populate_existing) cannot undo the sequence just given out.
    session.flush()
    session.execute(
        dialect_insert(session, CalendarInvite)
        .values(booking_id=copy.id, uid=uid, updated_at=copy.updated_at)
        .on_conflict_do_nothing(index_elements=["booking_id"])
    )
    query = select(CalendarInvite).where(CalendarInvite.booking_id == copy.id).with_for_update()
    record: CalendarInvite = session.scalars(query.execution_options(populate_existing=True)).one()
    return record


def fingerprint(method: str, recipient: str, event: Event) -> str:
    """What an invite says: method, recipient and event (built with SEQUENCE 0 and a fixed DTSTAMP)."""
    return hashlib.sha256(f"{method}\n{recipient}\n".encode() + event.to_ical()).hexdigest()


@dataclass(frozen=True)
class Claimed:
    """One session's calendar in an invite email: its method, the SEQUENCE given out, the VEVENT."""

    booking: BookingCopy
    method: str
    sequence: int
    event: Event


def _claim_event(
    *,
    session: Session,
    runtime: Runtime,
    row: Message,
    booking: BookingCopy,
    join_url: str | None,
    now: datetime,
) -> Claimed | str:
    """Give ``booking``'s entry the next SEQUENCE for invite ``row``; or why the provider needs nothing."""
    method = ical.CANCEL if booking.status == CANCELLED else ical.REQUEST
    recipient = booking.snapshot["provider"]["email"]
    record = lock_record(session, booking, uid=ical.event_uid(booking.id, runtime.config.booking_public_url))
    if method == ical.CANCEL and record.sequence is None:
        return "no invite went to the provider, so there is nothing to cancel"
    event = provider_event(
        booking,
        config=runtime.config,
        book=runtime.book,
        join_url=join_url,
        sequence=0,
        stamp=_STAMP_PLACEHOLDER,
        scheduling=True,
        # Only in the invite: the sheet lists the provider's whole day, more than a feed that calendar
        # services fetch and store should carry.
        day_sheet=day_sheet_url(booking, signer=runtime.signer, base_url=runtime.config.booking_public_url),
    )
    said = fingerprint(method, recipient, event)
    if record.fingerprint == said and record.message_id not in (None, row.id):
        carrier = session.get(Message, record.message_id)
        if carrier is not None and carrier.status in _ALIVE:
            return f"the provider's calendar already has this from invite {carrier.id}"
    sequence = 0 if record.sequence is None else record.sequence + 1
    record.sequence, record.fingerprint, record.message_id = sequence, said, row.id
    record.method, record.updated_at = method, now
    event.sequence = sequence
    event.DTSTAMP = now
    return Claimed(booking=booking, method=method, sequence=sequence, event=event)


def prepare(
    *,
    session: Session,
    runtime: Runtime,
    row: Message,
    booking: BookingCopy,
    join_url: str | None,
    now: datetime,
) -> EmailMessage | None:
    """Claim one invite: give it the next SEQUENCE and build its email; None when it is not to go (recorded).

    Runs in the claim transaction, after the usual checks (its booking version is the current one, it has
    not expired).
    """
    if row.step == COURSE_INVITE:
        return prepare_course(session=session, runtime=runtime, row=row, anchor=booking, now=now)
    claimed = _claim_event(
        session=session, runtime=runtime, row=row, booking=booking, join_url=join_url, now=now
    )
    if isinstance(claimed, str):
        _skip(row, claimed, now)
        return None
    method, sequence = claimed.method, claimed.sequence
    row.sequence = sequence
    calendar = ical.calendar_ical(method=method, events=[claimed.event])
    rendered = _email(runtime=runtime, booking=booking, method=method, sequence=sequence, join_url=join_url)
    row.recipient, row.subject, row.body = booking.snapshot["provider"]["email"], rendered.subject, None
    log.info(
        "provider invite claimed",
        extra={"message_id": row.id, "booking_id": str(booking.id), "method": method, "sequence": sequence},
    )
    return compose_email(
        sender=runtime.config.smtp_from,
        to=row.recipient,
        rendered=rendered,
        message_id=message_id_for(message_key(row.id), runtime.config.smtp_from),
        calendar=calendar,
    )


def _course_sessions(session: Session, anchor: BookingCopy, version: int) -> list[BookingCopy]:
    """The sessions of the whole-course change whose invite hangs on ``anchor`` at ``version``, that are its
    provider's, as they are now, in course order."""
    course = anchor.snapshot.get("course") or {}
    notices = session.scalars(
        select(CourseNotice).where(CourseNotice.course_id == uuid.UUID(str(course.get("id"))))
    )
    for notice in notices:
        listed = notice.sessions or []
        if {"booking_id": str(anchor.id), "version": version} in [
            {"booking_id": s["booking_id"], "version": s["version"]} for s in listed
        ]:
            ids = [uuid.UUID(s["booking_id"]) for s in listed]
            copies = session.scalars(select(BookingCopy).where(BookingCopy.id.in_(ids))).all()
            mine = [c for c in copies if c.provider_id == anchor.provider_id]
            return sorted(mine, key=lambda c: (_index(c), c.start_at))
    raise LookupError(f"no course change lists booking {anchor.id} at version {version}")


def prepare_course(
    *, session: Session, runtime: Runtime, row: Message, anchor: BookingCopy, now: datetime
) -> EmailMessage | None:
    """Claim a whole-course invite: one email to the provider, an iTIP calendar (own UID, next SEQUENCE) for
    each of their sessions the change touched, as each is now; None when the calendar needs none of them."""
    sessions = _course_sessions(session, anchor, row.booking_version)
    current = {(c.id, c.version) for c in sessions}
    links_of = select(JoinLink).where(JoinLink.booking_id.in_([c.id for c in sessions]))
    joins = {
        j.booking_id: j.provider_url
        for j in session.scalars(links_of)
        if (j.booking_id, j.booking_version) in current
    }
    claimed: dict[uuid.UUID, Claimed] = {}
    reasons = []
    for copy in sorted(sessions, key=lambda c: str(c.id)):  # calendar records locked in one order
        if now >= copy.end_at:
            reasons.append("the visit is over")
            continue
        found = _claim_event(
            session=session, runtime=runtime, row=row, booking=copy, join_url=joins.get(copy.id), now=now
        )
        if isinstance(found, str):
            reasons.append(found)
        else:
            claimed[copy.id] = found
    parts = [claimed[c.id] for c in sessions if c.id in claimed]
    if not parts:
        _skip(
            row,
            "the provider's calendar needs none of these sessions: " + "; ".join(sorted(set(reasons))),
            now,
        )
        return None
    row.sequence = max(p.sequence for p in parts)
    rendered = _course_email(runtime=runtime, parts=parts)
    first, *others = parts
    attachments = tuple(
        FileAttachment(
            f"session-{_index(p.booking)}.ics",
            ical.CONTENT_TYPE,
            ical.calendar_ical(method=p.method, events=[p.event]),
            params=(("charset", "utf-8"), ("method", p.method)),
        )
        for p in others
    )
    row.recipient, row.subject, row.body = anchor.snapshot["provider"]["email"], rendered.subject, None
    log.info(
        "provider course invite claimed",
        extra={"message_id": row.id, "booking_id": str(anchor.id), "sessions": len(parts)},
    )
    return compose_email(
        sender=runtime.config.smtp_from,
        to=row.recipient,
        rendered=replace(rendered, attachments=attachments),
        message_id=message_id_for(message_key(row.id), runtime.config.smtp_from),
        calendar=ical.calendar_ical(method=first.method, events=[first.event]),
    )


def _index(copy: BookingCopy) -> int:
    return int((copy.snapshot.get("course") or {}).get("index", 0))


def _skip(row: Message, reason: str, now: datetime) -> None:
    row.status, row.reason, row.updated_at = SKIPPED, reason, now
    log.info("provider invite not sent: %s", reason, extra={"message_id": row.id})


def _email(
    *, runtime: Runtime, booking: BookingCopy, method: str, sequence: int, join_url: str | None
) -> RenderedEmail:
    """Subject, text and HTML of an invite email (what the calendar part says, in words)."""
    snap = booking.snapshot
    tz = snap["provider"]["time_zone"]
    title = summary(snap, runtime.book)
    when = format_local(booking.start_at, tz)
    video = snap["appointment_type"]["mode"] == VIDEO
    first, initial = short_name(snap["patient"]["name"])
    cancelled = method == ical.CANCEL
    if cancelled:
        subject = f"Cancelled: {title} @ {when}"
    elif sequence == 0:
        subject = f"Invitation: {title} @ {when}"
    else:
        subject = f"Updated invitation: {title} @ {when}"
    context = {
        "title": title,
        "when": when,
        "minutes": int((booking.end_at - booking.start_at).total_seconds() // 60),
        "patient": " ".join(p for p in (first, initial) if p),
        "video": video,
        "join_url": join_url,
        "where": None
        if video
        else (snap["appointment_type"].get("location") or snap["clinic"].get("address", "")),
        "cancelled": cancelled,
        "updated": sequence > 0 and not cancelled,
        "booking_id": str(booking.id),
        "staff_url": runtime.config.staff_url(str(booking.id)),
        "clinic": runtime.book.sms_name(snap["clinic"]["slug"], snap["clinic"]["name"]),
    }
    text = _TEMPLATES.get_template("invite.email.txt").render(context).strip() + "\n"
    html = _TEMPLATES.get_template("invite.email.html").render(context)
    return RenderedEmail(subject=subject, text=text, html=html)


def _course_email(*, runtime: Runtime, parts: list[Claimed]) -> RenderedEmail:
    """Subject, text and HTML of a whole-course invite email: every session it carries, one line each."""
    snap = parts[0].booking.snapshot
    tz = snap["provider"]["time_zone"]
    title = summary(snap, runtime.book)
    first, initial = short_name(snap["patient"]["name"])
    video = snap["appointment_type"]["mode"] == VIDEO
    all_cancelled = all(p.method == ical.CANCEL for p in parts)
    all_new = all(p.method == ical.REQUEST and p.sequence == 0 for p in parts)
    count = len(parts)
    start = format_local(min(p.booking.start_at for p in parts), tz)
    if all_cancelled:
        subject = f"Cancelled: {count} sessions, {title}, from {start}"
    elif all_new:
        subject = f"Invitation: {count} sessions, {title}, from {start}"
    else:
        subject = f"Updated invitation: {count} sessions, {title}, from {start}"
    context = {
        "subject": subject,
        "count": count,
        "patient": " ".join(p for p in (first, initial) if p),
        "all_cancelled": all_cancelled,
        "all_new": all_new,
        "where": "video call"
        if video
        else (snap["appointment_type"].get("location") or snap["clinic"].get("address", "")),
        "clinic": runtime.book.sms_name(snap["clinic"]["slug"], snap["clinic"]["name"]),
        "sessions": [
            {
                "label": _label(p.booking),
                "when": format_local(p.booking.start_at, tz),
                "minutes": int((p.booking.end_at - p.booking.start_at).total_seconds() // 60),
                "cancelled": p.method == ical.CANCEL,
                "booking_id": str(p.booking.id),
                "staff_url": runtime.config.staff_url(str(p.booking.id)),
            }
            for p in parts
        ],
    }
    text = _TEMPLATES.get_template("course.email.txt").render(context).strip() + "\n"
    html = _TEMPLATES.get_template("course.email.html").render(context)
    return RenderedEmail(subject=subject, text=text, html=html)


def _label(copy: BookingCopy) -> str:
    course = copy.snapshot.get("course") or {"index": 1, "sessions": 1}
    index, count = int(course["index"]), int(course["sessions"])
    return f"Session {index} of {count}" if index <= count else "Booster session"


def _calendar_join_url(runtime: Runtime, booking: BookingCopy, context: dict[str, Any]) -> str | None:
    """The video link the patient's file carries: consult's page for this version's manage token, as the
    booking service's manage page gives it, so the emailed file and the downloaded one stay the same entry."""
    if booking.snapshot["appointment_type"]["mode"] != VIDEO or booking.status == CANCELLED:
        return None
    token = str(context["manage_url"]).rstrip("/").rsplit("/", 1)[-1]
    return links.manage_join_url(runtime.config.consult_public_url, token)


def patient_calendar(runtime: Runtime, booking: BookingCopy, context: dict[str, Any]) -> FileAttachment:
    """The patient's ``appointment.ics`` for this booking version: the manage page's download, same UID."""
    snap = booking.snapshot
    kind, clinic = snap["appointment_type"], snap["clinic"]
    visit = ical.PatientVisit(
        booking_id=str(booking.id),
        version=booking.version,
        cancelled=booking.status == CANCELLED,
        start=booking.start_at,
        end=booking.end_at,
        # An in-clinic visit in the clinic's time, a video visit in the patient's (issue 17).
        time_zone=snap["patient"]["time_zone"] if kind["mode"] == VIDEO else clinic["time_zone"],
        visit_name=kind["name"],
        video=kind["mode"] == VIDEO,
        location=kind.get("location") or clinic.get("address", ""),
        clinic_name=clinic["name"],
        clinic_phone=clinic.get("phone", ""),
        provider_name=snap["provider"]["name"],
        manage_url=context["manage_url"],
        join_url=_calendar_join_url(runtime, booking, context),
    )
    data = ical.patient_calendar(visit, booking_public_url=runtime.config.booking_public_url, stamp=utcnow())
    return FileAttachment(
        "appointment.ics",
        ical.CONTENT_TYPE,
        data,
        params=(("charset", "utf-8"), ("method", ical.PUBLISH)),
    )
