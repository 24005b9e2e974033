"""Business operations on slots and bookings.

Each change to a booking happens in the caller's transaction together with its claims and its outbox event,
so a booking, its protection against double booking and its notifications commit or vanish together.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from services.booking import escorts, invitations, outbox, sameday
from services.booking.catalog import service as catalog
from services.booking.courses import rules as course_rules
from services.booking.models import (
    GRANULE_MINUTES,
    Booking,
    DayClaim,
    Intake,
    Invitation,
    OutboxEvent,
    Patient,
    Provider,
    SlotClaim,
)
from services.booking.resources import service as resources
from services.booking.search import (
    OFFER,
    Offer,
    bump_schedule,
    checked_offer,
    nearest_free,
    offer,
    offers_start,
)
from services.booking.slots import blocked_span
from shared import events, links
from shared.db import insert_now, insert_of, is_unique_violation
from shared.problems import Conflict, Gone, NotFound, Problem, field_error
from shared.timeutil import ensure_utc, local_date, utcnow

GRANULE = timedelta(minutes=GRANULE_MINUTES)
CONFIRMED = "confirmed"
CANCELLED = "cancelled"


def _slot_taken(
    session: Session,
    booking_like: tuple[int, int, datetime],
    ignore: uuid.UUID | None = None,
    *,
    detail: str = "That time is no longer available.",
    slug: str = "slot-unavailable",
) -> Problem:
    provider_id, type_id, start = booking_like
    alternatives = nearest_free(
        session=session,
        provider_id=provider_id,
        appointment_type_id=type_id,
        around=start,
        ignore_booking_id=ignore,
    )
    return Conflict(detail, slug=slug, extra={"alternatives": [a.isoformat() for a in alternatives]})


def _require_offered(session: Session, found: Offer, start: datetime, ignore: uuid.UUID | None) -> None:
    """409 with alternatives unless the provider's hours, the type's grid and the clock allow ``start``.

    Whether another booking holds the time is left to the slot and day claims: they decide it in the
    database, and their refusal gets the same answer.
    """
    if not offers_start(session, found, start, utcnow()):
        raise _slot_taken(session, (found.provider.id, found.appointment_type.id, start), ignore)


def _claim_time(session: Session, booking: Booking) -> bool:
    """Claim the granules ``booking`` blocks; whether it got all of them (False: another booking holds one).

    INSERT ... ON CONFLICT DO NOTHING: a granule another booking holds (or is inserting: the database waits
    for that transaction) is skipped instead of failing the transaction, so no savepoint is needed around
    the claim. Whoever gets a short count raises, and the caller's rollback removes its claims.
    """
    at = booking.block_start
    rows = []
    while at < booking.block_end:
        rows.append({"provider_id": booking.provider_id, "at": at, "booking_id": booking.id})
        at += GRANULE
    claimed = session.connection().execute(_claims_insert(session.get_bind().dialect.name), rows)
    # Counted from RETURNING (one multi-row INSERT underneath): its rowcount is not reported by every driver.
    return len(claimed.all()) == len(rows)


@functools.cache
def _claims_insert(dialect: str) -> Any:
    claims = SlotClaim.metadata.tables["slot_claims"]
    return insert_of(dialect)(claims).on_conflict_do_nothing().returning(claims.c.at)


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
    raise _slot_taken(
        session,
        (booking.provider_id, booking.appointment_type_id, booking.start_at),
        booking.id,
        detail="The provider's daily limit for this appointment type is reached.",
        slug="daily-limit",
    )


def _hold_resource(session: Session, booking: Booking, pinned: int | None, *, kept: bool = False) -> None:
    """Hold the chair or room the booking's type needs (resources.hold); 409 with alternatives if none.

    ``kept``: ``pinned`` is the chair staff pinned the booking to before it moved, and it stays pinned.
    """
    if not resources.hold(session, booking, booking.appointment_type, pinned):
        detail = "No suitable chair or room is free for this visit and its recovery."
        if kept:
            detail = (
                f"The chair or room pinned for this visit (resource {pinned}) is not free at the new time; "
                "move the visit to another first (PUT /api/v1/bookings/<id>/resource) or pick another time."
            )
        raise _slot_taken(
            session,
            (booking.provider_id, booking.appointment_type_id, booking.start_at),
            booking.id,
            detail=detail,
            slug="pinned-resource-unavailable" if kept else "resource-unavailable",
        )


def release_claims(*, session: Session, booking: Booking) -> None:
    """Give back a booking's provider, day and resource claims ahead of moving it with others at once.

    reschedule_booking() claims the new time again; a course moving several sessions releases them all
    first, so that one session may take a time another of them is leaving.
    """
    pinned = _release(session, booking)
    if pinned is not None:  # reschedule_booking() pins the same resource again
        session.info.setdefault(_PINS, {})[booking.id] = pinned


# session.info key: resources pinned to bookings whose claims release_claims() gave back, by booking id.
_PINS = "booking.released_pins"


def _release(session: Session, booking: Booking) -> int | None:
    """Give back the booking's claims; the resource staff pinned it to, if any."""
    session.execute(delete(SlotClaim).where(SlotClaim.booking_id == booking.id))
    session.execute(delete(DayClaim).where(DayClaim.booking_id == booking.id))
    sameday.release(session, booking)
    return resources.release(session, booking.id)


def _by_key(session: Session, key: str) -> Booking | None:
    return session.scalar(select(Booking).where(Booking.idempotency_key == key))


def _replay(booking: Booking, request_hash: str | None) -> tuple[Booking, bool]:
    if booking.request_hash != request_hash:
        raise field_error(
            "Idempotency-Key", "this key was already used with a different request", location="headers"
        )
    return booking, False


# offer() and the lookup of the patient by email and phone in one round trip (one row: the oldest match).
_OFFER_AND_PATIENT = {
    no_phone: OFFER.add_columns(Patient)
    .outerjoin(Patient, catalog.same_patient(Provider.clinic_id, no_phone=no_phone))
    .order_by(Patient.created_at)
    .limit(1)
    for no_phone in (False, True)
}


@dataclass(frozen=True)
class _Request:
    """What a booking request resolved to, checked, before anything is written."""

    found: Offer
    start: datetime
    person: Patient | None  # the patient named by patient_id, or the clinic's patient matching the details
    invitation: Invitation | None


def _resolve(
    session: Session,
    *,
    provider_id: int,
    appointment_type_id: int,
    start: datetime,
    patient_id: uuid.UUID | None,
    patient: dict[str, Any] | None,
    invitation_id: uuid.UUID | None,
) -> _Request:
    """Load the offer (with the patient the details name, in the same round trip) and check the request."""
    person: Patient | None = None
    if patient is not None:
        key = catalog.patient_key(patient)
        row = session.execute(
            _OFFER_AND_PATIENT[key["phone"] is None],
            {"provider_id": provider_id, "type_id": appointment_type_id, **key},
        ).first()
        found = checked_offer(session, row, provider_id, appointment_type_id)
        assert row is not None  # (checked_offer raised otherwise)
        person = row[3]
    else:
        found = offer(session, provider_id, appointment_type_id)
    invitation = None
    if invitation_id is not None:
        invitation = invitations.get_usable(session=session, invitation_id=invitation_id)
        invitations.check_allows(invitation, provider=found.provider, appointment_type=found.appointment_type)
    if patient_id is not None:
        person = catalog.get_patient(session=session, patient_id=patient_id)
        if person.clinic_id != found.provider.clinic_id:
            raise field_error("patient_id", "this patient belongs to another clinic")
    _require_offered(session, found, start, None)
    return _Request(found=found, start=start, person=person, invitation=invitation)


def _new_booking(
    request: _Request,
    person: Patient,
    *,
    idempotency_key: str | None,
    request_hash: str | None,
    course: tuple[uuid.UUID, int] | None,
) -> Booking:
    """The Booking row for ``request``, not yet written."""
    provider, appointment_type, rules = (
        request.found.provider,
        request.found.appointment_type,
        request.found.rules,
    )
    start = request.start
    block_start, block_end = blocked_span(start, rules)
    return Booking(
        id=uuid.uuid4(),
        clinic_id=provider.clinic_id,
        provider_id=provider.id,
        provider=provider,
        appointment_type_id=appointment_type.id,
        appointment_type=appointment_type,
        patient_id=person.id,
        patient=person,
        status=CONFIRMED,
        start_at=start,
        end_at=start + rules.duration,
        block_start=block_start,
        block_end=block_end,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        course_id=course[0] if course else None,
        course_index=course[1] if course else None,
    )


def _insert_booking(
    session: Session,
    request: _Request,
    *,
    patient: dict[str, Any] | None,
    idempotency_key: str | None,
    request_hash: str | None,
    course: tuple[uuid.UUID, int] | None,
) -> tuple[Booking, bool]:
    """Write the booking (and a new patient); with a key another request just used, answer with its booking.

    With an Idempotency-Key, the same key may be racing in another request: its unique index decides,
    inside a savepoint, so that the loser writes nothing (not even a new patient) and can still read the
    winner's booking to answer with it. Without a key there is nothing to answer with but a 409.
    """
    nested = session.begin_nested() if idempotency_key else None
    try:
        person = request.person
        if patient is not None:
            person = catalog.find_or_create_patient(
                session=session,
                clinic_id=request.found.provider.clinic_id,
                details=patient,
                found=person,
            )
        assert person is not None  # (a patient_id or patient details; the view's schema requires one)
        booking = _new_booking(
            request, person, idempotency_key=idempotency_key, request_hash=request_hash, course=course
        )
        insert_now(session, booking)
        if nested is not None:
            nested.commit()
    except IntegrityError as exc:
        if nested is None or not is_unique_violation(exc):
            raise
        nested.rollback()
        if idempotency_key is None or (existing := _by_key(session, idempotency_key)) is None:
            raise
        return _replay(existing, request_hash)
    return booking, True


def _hold(session: Session, booking: Booking, resource_id: int | None) -> None:
    """Claim the booking's time, its place in a daily limit and its chair or room; 409 if one is taken."""
    if not _claim_time(session, booking):
        raise _slot_taken(
            session, (booking.provider_id, booking.appointment_type_id, booking.start_at), booking.id
        )
    _claim_day(session, booking, booking.appointment_type.daily_limit)
    sameday.claim(session, booking)
    _hold_resource(session, booking, resource_id)


def _attach(
    session: Session, booking: Booking, intake: dict[str, Any] | None, invitation: Invitation | None
) -> None:
    """Store the booking's intake answers and spend its single-use invitation."""
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
    resource_id: int | None = None,
    course: tuple[uuid.UUID, int] | None = None,
    escort: dict[str, Any] | None = None,
) -> tuple[Booking, bool]:
    """Book a slot; return the booking and whether it was created now (False: an idempotent replay).

    ``intake`` (reasons, reason_other, treatments_tried) is stored beside the booking and never put in its
    events. ``invitation_id`` books through a private invitation, which must allow this type and provider;
    a single-use invitation is spent in the same transaction. A type that needs a resource (a chair) holds
    ``resource_id`` or the least fragmenting free one, in the same transaction. ``course`` (course id,
    session index) makes the booking a session of a treatment course. ``escort`` (first_name, phone,
    patient_first_name) is who takes the patient home, for a type that requires one (which may be booked
    without: the escort then reads as missing until given).
    """
    if idempotency_key and (existing := _by_key(session, idempotency_key)) is not None:
        return _replay(existing, request_hash)
    request = _resolve(
        session,
        provider_id=provider_id,
        appointment_type_id=appointment_type_id,
        start=ensure_utc(start),
        patient_id=patient_id,
        patient=patient,
        invitation_id=invitation_id,
    )
    booking, created = _insert_booking(
        session,
        request,
        patient=patient if patient_id is None else None,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        course=course,
    )
    if not created:
        return booking, False
    _hold(session, booking, resource_id)
    _attach(session, booking, intake, request.invitation)
    escorts.add_at_booking(session, booking, escort)
    outbox.record_event(session, booking, events.BOOKING_CONFIRMED)
    session.flush()
    bump_schedule(session, booking.provider_id)
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
        .options(selectinload(Booking.intake), selectinload(Booking.resource), selectinload(Booking.escort))
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
    course_checked: bool = False,
) -> Booking:
    """Move a confirmed booking to a new free start; the version rises by one.

    ``by="patient"`` applies the appointment type's change policy. A course session keeps its course's
    spacing rules (422 naming the one it would break) unless the caller checked the whole course.
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
    if booking.course_id is not None and not course_checked:
        course_rules.check_move(session, booking, start)
    found = offer(session, booking.provider_id, booking.appointment_type_id)
    provider, appointment_type, rules = found.provider, found.appointment_type, found.rules
    _require_offered(session, found, start, booking.id)
    previous = events.TimeRange(start=booking.start_at, end=booking.end_at)

    released = _release(session, booking)
    pinned = session.info.get(_PINS, {}).pop(booking.id, None) if released is None else released
    booking.start_at, booking.end_at = start, start + rules.duration
    booking.block_start, booking.block_end = blocked_span(start, rules)
    _flush_versioned(session)
    if not _claim_time(session, booking):
        # Another booking holds part of the new time; the caller's rollback undoes the move.
        raise _slot_taken(session, (provider.id, appointment_type.id, start), booking.id)
    _claim_day(session, booking, appointment_type.daily_limit)
    sameday.claim(session, booking)
    _hold_resource(session, booking, pinned, kept=pinned is not None)  # a staff pin moves with the visit
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


def booking_behind_link(
    *, session: Session, signer: links.LinkSigner, token: str, allow_expired: bool = False
) -> tuple[Booking, int]:
    """The booking a manage token names and the version it was signed for, whatever the booking's version
    now: 404 if forged, 410 if expired (unless ``allow_expired``: its signature still holds)."""
    try:
        claims = signer.verify(token, purpose=links.MANAGE)
    except links.LinkError as exc:
        if exc.reason == "expired" and exc.claims is not None and allow_expired:
            claims = exc.claims
        elif exc.reason == "expired":
            raise Gone("This link has expired.", slug="link-expired") from exc
        else:
            raise NotFound("This link is not valid.", slug="link-invalid") from exc
    try:
        booking_id = uuid.UUID(claims.subject)
    except ValueError as exc:
        raise NotFound("This link is not valid.", slug="link-invalid") from exc
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise NotFound("This link is not valid.", slug="link-invalid")
    return booking, claims.version


def booking_for_link(*, session: Session, signer: links.LinkSigner, token: str) -> Booking:
    """The booking a patient's manage token opens: 404 if forged, 410 if expired, 409 if superseded."""
    booking, version = booking_behind_link(session=session, signer=signer, token=token)
    if version != booking.version:
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
