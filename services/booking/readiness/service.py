"""Who is ready for a day: the day-before safety check's answers and flag, and the staff day sheet."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from services.booking import escorts
from services.booking.attendance import AttendanceView, current
from services.booking.models import (
    CHECK_UNANSWERED,
    Attendance,
    Booking,
    BookingResource,
    Clinic,
    DayCheck,
    Provider,
    Resource,
)
from services.booking.readiness.checklists import Checklist
from shared import links
from shared.problems import Conflict, Gone, NotFound, field_error
from shared.timeutil import day_bounds_utc, utcnow

log = logging.getLogger(__name__)


def _link_problem(exc: links.LinkError) -> Exception:
    if exc.reason == "expired":
        return Gone("This link has expired.", slug="link-expired")
    return NotFound("This link is not valid.", slug="link-invalid")


# --- the day-before safety check -------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCheckLink:
    """What a day-check link opens: the booking, its checklist, and the booking version it was sent for."""

    booking: Booking
    checklist: Checklist
    version: int

    @property
    def current(self) -> bool:
        """Whether the link is about the booking as it is now (not cancelled, not moved since)."""
        return self.booking.status == "confirmed" and self.booking.version == self.version


def open_day_check(
    *, session: Session, keys: Sequence[str], code: str, checklists: Mapping[str, Checklist]
) -> DayCheckLink:
    """The booking and checklist of a day-check link (404 not a valid link, 410 expired)."""
    try:
        claims = links.verify_short(keys, code, purpose=links.DAY_CHECK)
    except links.LinkError as exc:
        raise _link_problem(exc) from exc
    booking = session.get(Booking, uuid.UUID(claims.subject))
    checklist = checklists.get(booking.appointment_type.reminder_protocol) if booking else None
    if booking is None or checklist is None:
        raise NotFound("This link is not valid.", slug="link-invalid")
    return DayCheckLink(booking, checklist, claims.version)


def answers_of(booking: Booking, row: DayCheck | None) -> dict[str, bool]:
    """The patient's answers for the booking's current version (none for an older one)."""
    return dict(row.answers) if row is not None and row.booking_version == booking.version else {}


def check_flag(booking: Booking, row: DayCheck | None, checklist: Checklist | None) -> str | None:
    """What staff see: ``clear``, ``call``, ``unanswered``, or None when the visit has no checklist."""
    if checklist is None:
        return None
    if row is None or row.booking_version != booking.version:
        return CHECK_UNANSWERED
    return row.flag


def answer_day_check(
    *, session: Session, link: DayCheckLink, answers: Mapping[str, bool], now: datetime | None = None
) -> DayCheck:
    """Record the patient's answers and their flag; the same answers again change nothing (409: outdated)."""
    # The booking row's lock orders this against a concurrent reschedule or cancel (columns only: no joins).
    session.execute(select(Booking.id).where(Booking.id == link.booking.id).with_for_update())
    session.refresh(link.booking)
    if not link.current:
        raise Conflict("A newer link replaced this one.", slug="link-outdated")
    checklist, booking = link.checklist, link.booking
    given = {item.key: bool(answers[item.key]) for item in checklist.items}
    row = session.get(DayCheck, booking.id, with_for_update=True)
    if (
        row is not None
        and row.booking_version == booking.version
        and row.checklist_version == checklist.version
        and dict(row.answers) == given
    ):
        return row  # a re-submission: nothing changed, so the day sheet's order does not move either
    if row is None:
        row = DayCheck(booking_id=booking.id)
        session.add(row)
    row.booking_version, row.answers, row.flag = booking.version, given, checklist.flag(given)
    row.checklist, row.checklist_version = checklist.protocol, checklist.version
    row.answered_at = now or utcnow()
    session.flush()
    # Never the answers nor the flag: a log line is read by people who must not learn either.
    log.info("day check answered", extra={"booking_id": str(booking.id)})
    return row


# --- the day sheet --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadinessRow:
    """One session of a day as staff see it: who, when, with whom, where, and whether they are ready."""

    booking_id: uuid.UUID
    start: datetime
    end: datetime
    provider_id: int
    provider_name: str
    chair: str | None
    appointment_type: str
    patient_first_name: str
    attendance: AttendanceView
    checklist: str | None
    escort: escorts.EscortStatus
    changed_at: datetime


def readiness(
    *,
    session: Session,
    clinic_id: int,
    day: date,
    checklists: Mapping[str, Checklist],
    provider_id: int | None = None,
) -> list[ReadinessRow]:
    """The clinic's confirmed sessions on ``day`` (its own zone), newest change first (404: no clinic)."""
    clinic = get_clinic(session=session, clinic_id=clinic_id)
    start, end = day_bounds_utc(day, clinic.time_zone)
    query = (
        select(Booking, Attendance, DayCheck, Resource.name)
        .outerjoin(Attendance, Attendance.booking_id == Booking.id)
        .outerjoin(DayCheck, DayCheck.booking_id == Booking.id)
        .outerjoin(BookingResource, BookingResource.booking_id == Booking.id)
        .outerjoin(Resource, Resource.id == BookingResource.resource_id)
        .options(selectinload(Booking.escort))
        .where(
            Booking.clinic_id == clinic_id,
            Booking.status == "confirmed",
            Booking.start_at >= start,
            Booking.start_at < end,
        )
    )
    if provider_id is not None:
        query = query.where(Booking.provider_id == provider_id)
    rows = [
        _readiness_row(booking, attendance, check, chair, checklists)
        for booking, attendance, check, chair in session.execute(query).all()
    ]
    return sorted(rows, key=lambda r: (r.changed_at, r.start), reverse=True)


def _readiness_row(
    booking: Booking,
    attendance: Attendance | None,
    check: DayCheck | None,
    chair: str | None,
    checklists: Mapping[str, Checklist],
) -> ReadinessRow:
    changes = [
        booking.updated_at,
        *(r.updated_at for r in (attendance, check, booking.escort) if r is not None),
    ]
    return ReadinessRow(
        booking_id=booking.id,
        start=booking.start_at,
        end=booking.end_at,
        provider_id=booking.provider_id,
        provider_name=booking.provider.name,
        chair=chair,
        appointment_type=booking.appointment_type.name,
        patient_first_name=escorts.first_name(booking.patient.name),
        attendance=current(booking, attendance),
        escort=escorts.status(booking),
        checklist=check_flag(booking, check, checklists.get(booking.appointment_type.reminder_protocol)),
        changed_at=max(changes),
    )


@dataclass(frozen=True)
class DaySheetLink:
    """A signed link to one clinic's day sheet."""

    url: str
    expires_at: datetime
    clinic_id: int
    day: date
    provider_id: int | None


def day_sheet_link(
    *,
    session: Session,
    signer: links.LinkSigner,
    base_url: str,
    clinic_id: int,
    day: date,
    provider_id: int | None = None,
    now: datetime | None = None,
) -> DaySheetLink:
    """A link to ``day``'s sheet that works until that day ends in the clinic's zone (404: no clinic)."""
    clinic = get_clinic(session=session, clinic_id=clinic_id)
    if provider_id is not None:
        provider = session.get(Provider, provider_id)
        if provider is None or provider.clinic_id != clinic_id:
            raise field_error("provider_id", "is not a provider of this clinic")
    expires_at = day_bounds_utc(day, clinic.time_zone)[1]
    if expires_at <= (now or utcnow()):
        raise field_error("day", "is over: a link to it would not work")
    token = links.day_sheet_token(
        signer, clinic_id=clinic_id, day=day.isoformat(), provider_id=provider_id, expires_at=expires_at
    )
    return DaySheetLink(links.day_sheet_url(base_url, token), expires_at, clinic_id, day, provider_id)


@dataclass(frozen=True)
class DaySheetScope:
    """What a day-sheet link shows: one clinic's day, optionally one provider's sessions."""

    clinic: Clinic
    day: date
    provider_id: int | None


def open_day_sheet(*, session: Session, signer: links.LinkSigner, token: str) -> DaySheetScope:
    """The clinic, day and provider of a day-sheet token (404 not a valid link, 410 expired)."""
    try:
        claims = signer.verify(token, purpose=links.DAY_SHEET)
        day = date.fromisoformat(str(claims.extra["d"]))
        provider = claims.extra.get("p")
        provider_id = int(provider) if provider is not None else None
        clinic_id = int(claims.subject)
    except links.LinkError as exc:
        raise _link_problem(exc) from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise NotFound("This link is not valid.", slug="link-invalid") from exc
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound("This link is not valid.", slug="link-invalid")
    return DaySheetScope(clinic, day, provider_id)


def get_clinic(*, session: Session, clinic_id: int) -> Clinic:
    """Clinic ``clinic_id`` (404 if there is none)."""
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"No clinic {clinic_id}.", slug="no-clinic")
    return clinic
