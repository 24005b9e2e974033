"""Business operations on slots and bookings.

Each change to a booking happens in the caller's transaction together with its claims and its outbox event,
so a booking, its protection against double booking and its notifications commit or vanish together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from services.booking import catalog, invitations, outbox
from services.booking.models import (
    GRANULE_MINUTES,
    Booking,
    DayClaim,
    Intake,
    OutboxEvent,
    SlotClaim,
)
from services.booking.search import (
    Offer,
    bookable_range,
    bump_schedule,
    candidate_starts,
    nearest_free,
    offer,
)
from services.booking.slots import blocked_span
from shared import events, links
from shared.db import is_unique_violation
from shared.problems import Conflict, Gone, NotFound, Problem, field_error
from shared.timeutil import ensure_utc, local_date, utcnow

GRANULE = timedelta(minutes=GRANULE_MINUTES)
CONFIRMED = "confirmed"
CANCELLED = "cancelled"


def _slot_taken(
    session: Session, booking_like: tuple[int, int, datetime], ignore: uuid.UUID | None = None
) -> Problem:
    provider_id, type_id, start = booking_like
    alternatives = nearest_free(
        session=session,
        provider_id=provider_id,
        appointment_type_id=type_id,
        around=start,
        ignore_booking_id=ignore,
    )
    return Conflict(
        "That time is no longer available.",
        slug="slot-unavailable",
        extra={"alternatives": [a.isoformat() for a in alternatives]},
    )


def _require_free(session: Session, found: Offer, start: datetime, ignore: uuid.UUID | None) -> None:
    """A friendly early 409 with alternatives; the slot claims are what make double booking impossible."""
    candidates = candidate_starts(session, found, start, start + GRANULE, ignore)
    lo, hi = bookable_range(candidates, found.rules, utcnow())
    if start not in candidates[lo:hi]:
        raise _slot_taken(session, (found.provider.id, found.appointment_type.id, start), ignore)


def _claim_time(session: Session, booking: Booking) -> None:
    """Insert the granules ``booking`` blocks; IntegrityError if any is held by another booking."""
    at = booking.block_start
    rows = []
    while at < booking.block_end:
        rows.append({"provider_id": booking.provider_id, "at": at, "booking_id": booking.id})
        at += GRANULE
    session.execute(insert(SlotClaim), rows)


def _claim_day(session: Session, booking: Booking, limit: int | None) -> None:
    """Take one of the day's numbered places for a type with a daily limit; 409 when none is left."""
    if limit is None:
        return
    day = local_date(booking.start_at, booking.provider.time_zone)
    key = (
        DayClaim.provider_id == booking.provider_id,
        DayClaim.appointment_type_id == booking.appointment_type_id,
    )
    for _attempt in range(limit):
        taken = set(session.scalars(select(DayClaim.ordinal).where(*key, DayClaim.day == day)))
        free = [n for n in range(1, limit + 1) if n not in taken]
        if not free:
            break
        nested = session.begin_nested()
        try:
            session.add(
                DayClaim(
                    provider_id=booking.provider_id,
                    appointment_type_id=booking.appointment_type_id,
                    day=day,
                    ordinal=free[0],
                    booking_id=booking.id,
                )
            )
            nested.commit()
            return
        except IntegrityError as exc:
            # Another booking took that place a moment ago: look again.
            nested.rollback()
            if not is_unique_violation(exc):
                raise
    raise Conflict("The provider's daily limit for this appointment type is reached.", slug="daily-limit")


def _release(session: Session, booking: Booking) -> None:
    session.execute(delete(SlotClaim).where(SlotClaim.booking_id == booking.id))
    session.execute(delete(DayClaim).where(DayClaim.booking_id == booking.id))


def _by_key(session: Session, key: str) -> Booking | None:
    return session.scalar(select(Booking).where(Booking.idempotency_key == key))


def _replay(booking: Booking, request_hash: str | None) -> tuple[Booking, bool]:
    if booking.request_hash != request_hash:
        raise field_error(
            "Idempotency-Key", "this key was already used with a different request", location="headers"
        )
    return booking, False


def book_appointment(
    *,
    session: Session,
    provider_id: int,
    appointment_type_id: int,
    start: datetime,
    patient_id: uuid.UUID | None = None,
    patient: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    intake: dict[str, Any] | None = None,
    invitation_id: uuid.UUID | None = None,
) -> tuple[Booking, bool]:
    """Book a slot; return the booking and whether it was created now (False: an idempotent replay).

    ``intake`` (reasons, reason_other, treatments_tried) is stored beside the booking and never put in its
    events. ``invitation_id`` books through a private invitation, which must allow this type and provider;
    a single-use invitation is spent in the same transaction.
    """
    if idempotency_key and (existing := _by_key(session, idempotency_key)) is not None:
        return _replay(existing, request_hash)
    start = ensure_utc(start)
    found = offer(session, provider_id, appointment_type_id)
    provider, appointment_type, rules = found.provider, found.appointment_type, found.rules
    invitation = None
    if invitation_id is not None:
        invitation = invitations.get_usable(session=session, invitation_id=invitation_id)
        invitations.check_allows(invitation, provider=provider, appointment_type=appointment_type)
    if patient_id is not None:
        person = catalog.get_patient(session=session, patient_id=patient_id)
        if person.clinic_id != provider.clinic_id:
            raise field_error("patient_id", "this patient belongs to another clinic")
    _require_free(session, found, start, None)
    block_start, block_end = blocked_span(start, rules)

    nested = session.begin_nested()
    try:
        if patient_id is None:
            assert patient is not None
            person = catalog.find_or_create_patient(
                session=session, clinic_id=provider.clinic_id, details=patient
            )
        booking = Booking(
            clinic_id=provider.clinic_id,
            provider=provider,
            appointment_type=appointment_type,
            patient=person,
            status=CONFIRMED,
            start_at=start,
            end_at=start + rules.duration,
            block_start=block_start,
            block_end=block_end,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        session.add(booking)
        session.flush()
        _claim_time(session, booking)
        nested.commit()
    except IntegrityError as exc:
        nested.rollback()
        if not is_unique_violation(exc):
            raise
        # Either the same Idempotency-Key won a race a moment ago, or another booking took the time.
        if idempotency_key and (existing := _by_key(session, idempotency_key)) is not None:
            return _replay(existing, request_hash)
        raise _slot_taken(session, (provider.id, appointment_type.id, start)) from exc
    _claim_day(session, booking, appointment_type.daily_limit)
    if intake is not None:
        session.add(
            Intake(
                booking=booking,
                reasons=list(intake.get("reasons") or []),
                reason_other=intake.get("reason_other") or "",
                treatments_tried=intake.get("treatments_tried") or "",
            )
        )
    else:
        # Known to be empty: the answer can be dumped after the commit without a query (and a transaction).
        set_committed_value(booking, "intake", None)
    if invitation is not None:
        invitations.redeem(session=session, invitation=invitation, booking=booking)
    outbox.record_event(session, booking, events.BOOKING_CONFIRMED)
    session.flush()
    bump_schedule(session, provider.id)
    return booking, True


def get_booking(*, session: Session, booking_id: uuid.UUID) -> Booking:
    """The booking ``booking_id`` or 404."""
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise NotFound(f"No booking {booking_id}.")
    return booking


def booking_events(*, session: Session, booking_id: uuid.UUID) -> list[OutboxEvent]:
    """The events booking ``booking_id`` recorded, oldest first, or 404 (see outbox.events_of)."""
    get_booking(session=session, booking_id=booking_id)
    return outbox.events_of(session, booking_id)


def list_bookings(
    *,
    session: Session,
    provider_id: int | None = None,
    patient_id: uuid.UUID | None = None,
    status: str | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[Booking], int]:
    """Bookings matching the filters, by start; and how many match in all."""
    conditions = []
    if provider_id is not None:
        conditions.append(Booking.provider_id == provider_id)
    if patient_id is not None:
        conditions.append(Booking.patient_id == patient_id)
    if status is not None:
        conditions.append(Booking.status == status)
    if start_from is not None:
        conditions.append(Booking.start_at >= start_from)
    if start_to is not None:
        conditions.append(Booking.start_at < start_to)
    total = session.scalar(select(func.count()).select_from(Booking).where(*conditions)) or 0
    rows = session.scalars(
        select(Booking)
        .where(*conditions)
        .options(selectinload(Booking.intake))
        .order_by(Booking.start_at, Booking.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return rows, total


def _check_changeable(booking: Booking, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != booking.version:
        raise Conflict(
            f"The booking changed (now version {booking.version}); reload it and try again.",
            slug="version-mismatch",
            extra={"current_version": booking.version},
        )


def change_deadline(booking: Booking) -> datetime:
    """Until when the patient may reschedule or cancel this booking online (the type's change policy)."""
    return booking.start_at - timedelta(hours=booking.appointment_type.change_cutoff_hours)


def _check_policy(booking: Booking, by: str) -> None:
    """Refuse a patient's change inside the type's cutoff; staff may always change a booking."""
    if by != "patient" or utcnow() < change_deadline(booking):
        return
    hours = booking.appointment_type.change_cutoff_hours
    phone = booking.clinic.phone
    raise Conflict(
        f"Online changes close {hours} hours before the appointment; "
        + (f"please call the clinic on {phone}." if phone else "please contact the clinic."),
        slug="change-window-closed",
        extra={"change_deadline": change_deadline(booking).isoformat()},
    )


def _flush_versioned(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            "The booking was changed at the same moment; reload it and try again.", slug="version-mismatch"
        ) from exc


def reschedule_booking(
    *,
    session: Session,
    booking_id: uuid.UUID,
    start: datetime,
    expected_version: int | None = None,
    by: str = "staff",
) -> Booking:
    """Move a confirmed booking to a new free start; the version rises by one.

    ``by="patient"`` applies the appointment type's change policy.
    """
    booking = get_booking(session=session, booking_id=booking_id)
    _check_changeable(booking, expected_version)
    if booking.status != CONFIRMED:
        raise Conflict("A cancelled booking cannot be rescheduled.", slug="booking-cancelled")
    if booking.start_at <= utcnow():
        raise Conflict("This appointment has already started.", slug="booking-started")
    _check_policy(booking, by)
    start = ensure_utc(start)
    if start == booking.start_at:
        raise field_error("start", "the booking is already at this time")
    found = offer(session, booking.provider_id, booking.appointment_type_id)
    provider, appointment_type, rules = found.provider, found.appointment_type, found.rules
    _require_free(session, found, start, booking.id)
    previous = events.TimeRange(start=booking.start_at, end=booking.end_at)

    nested = session.begin_nested()
    try:
        _release(session, booking)
        booking.start_at, booking.end_at = start, start + rules.duration
        booking.block_start, booking.block_end = blocked_span(start, rules)
        _flush_versioned(session)
        _claim_time(session, booking)
        nested.commit()
    except IntegrityError as exc:
        nested.rollback()
        if not is_unique_violation(exc):
            raise
        session.refresh(booking)
        raise _slot_taken(session, (provider.id, appointment_type.id, start), booking.id) from exc
    _claim_day(session, booking, appointment_type.daily_limit)
    outbox.record_event(session, booking, events.BOOKING_RESCHEDULED, previous=previous)
    session.flush()
    bump_schedule(session, provider.id)
    return booking


def cancel_booking(
    *, session: Session, booking_id: uuid.UUID, by: str, expected_version: int | None = None
) -> tuple[Booking, bool]:
    """Cancel a booking and free its time; return it and whether this call cancelled it.

    ``by="patient"`` applies the appointment type's change policy.
    """
    booking = get_booking(session=session, booking_id=booking_id)
    if booking.status == CANCELLED:
        return booking, False
    _check_changeable(booking, expected_version)
    if booking.end_at <= utcnow():
        raise Conflict("This appointment has already taken place.", slug="booking-past")
    _check_policy(booking, by)
    _release(session, booking)
    booking.status = CANCELLED
    booking.cancelled_at = utcnow()
    booking.cancelled_by = by
    _flush_versioned(session)
    outbox.record_event(session, booking, events.BOOKING_CANCELLED, cancelled_by=by)
    session.flush()
    bump_schedule(session, booking.provider_id)
    return booking, True


def booking_for_link(*, session: Session, signer: links.LinkSigner, token: str) -> Booking:
    """The booking a patient's manage token opens: 404 if forged, 410 if expired, 409 if superseded."""
    try:
        claims = signer.verify(token, purpose=links.MANAGE)
    except links.LinkError as exc:
        if exc.reason == "expired":
            raise Gone("This link has expired.", slug="link-expired") from exc
        raise NotFound("This link is not valid.", slug="link-invalid") from exc
    try:
        booking_id = uuid.UUID(claims.subject)
    except ValueError as exc:
        raise NotFound("This link is not valid.", slug="link-invalid") from exc
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise NotFound("This link is not valid.", slug="link-invalid")
    if claims.version != booking.version:
        raise Conflict(
            "This booking has changed since this link was sent; use the link in your latest message.",
            slug="link-outdated",
        )
    return booking


def manage_token(signer: links.LinkSigner, booking: Booking) -> str:
    """The patient's manage token for ``booking`` at its current version."""
    return links.manage_token(
        signer, booking_id=str(booking.id), version=booking.version, ends_at=booking.end_at
    )
