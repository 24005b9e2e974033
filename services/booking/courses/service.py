"""Business operations on treatment courses: templates, planning, booking a whole course, changing it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.booking import outbox, search, service
from services.booking.catalog import service as catalog
from services.booking.courses import planner
from services.booking.courses.planner import Blocked, Candidate, Preferences, Spacing
from services.booking.courses.rules import spacing_of
from services.booking.models import (
    AppointmentType,
    Booking,
    Clinic,
    Course,
    CourseTemplate,
    Patient,
    Provider,
)
from services.booking.models import ProviderAppointmentType as Offered
from services.booking.resources import service as resources
from shared import events, links
from shared.db import is_unique_violation
from shared.problems import Conflict, Gone, NotFound, Unprocessable, field_error
from shared.timeutil import ensure_utc, local_to_utc, to_zone, utcnow

CONFIRMED = "confirmed"
# Planning looks this far ahead when a template sets no window (the type's horizon still applies).
OPEN_WINDOW = timedelta(days=120)
# How many first starts a plan tries (per provider) before saying why none works; each miss skips every
# first start that provably cannot complete either (planner.earliest), so few are ever needed.
FIRST_TRIES = 24

# --- templates -----------------------------------------------------------------------------------------


def _type_of_clinic(session: Session, clinic_id: int, type_id: int, field: str) -> AppointmentType:
    found = session.get(AppointmentType, type_id)
    if found is None or found.clinic_id != clinic_id:
        raise field_error(field, "no such appointment type in this clinic")
    return found


def _check_template(session: Session, template: CourseTemplate) -> None:
    _type_of_clinic(session, template.clinic_id, template.session_type_id, "session_type_id")
    if template.booster_type_id is not None:
        _type_of_clinic(session, template.clinic_id, template.booster_type_id, "booster_type_id")
    if (template.booster_type_id is None) != (template.booster_interval_days is None):
        raise field_error("booster_interval_days", "give a booster type and its interval together")


def create_template(*, session: Session, clinic_id: int, fields: dict[str, Any]) -> CourseTemplate:
    """Create a course template of ``clinic_id``; 409 if its slug is taken there."""
    if session.get(Clinic, clinic_id) is None:
        raise NotFound(f"No clinic {clinic_id}.")
    template = CourseTemplate(clinic_id=clinic_id, **fields)
    _check_template(session, template)
    nested = session.begin_nested()
    session.add(template)
    try:
        nested.commit()
    except IntegrityError as exc:
        nested.rollback()
        if is_unique_violation(exc):
            raise Conflict(f"Course template {fields['slug']!r} exists in this clinic.") from exc
        raise
    return template


def get_template(*, session: Session, template_id: int) -> CourseTemplate:
    """The course template ``template_id`` or 404."""
    template = session.get(CourseTemplate, template_id)
    if template is None:
        raise NotFound(f"No course template {template_id}.")
    return template


def list_templates(*, session: Session, clinic_id: int | None = None) -> Sequence[CourseTemplate]:
    """Course templates, optionally of one clinic, by id."""
    query = select(CourseTemplate).order_by(CourseTemplate.id)
    if clinic_id is not None:
        query = query.where(CourseTemplate.clinic_id == clinic_id)
    return session.scalars(query).all()


def update_template(*, session: Session, template_id: int, changes: dict[str, Any]) -> CourseTemplate:
    """Change a template; courses already booked keep their sessions."""
    template = get_template(session=session, template_id=template_id)
    with session.no_autoflush:  # checked before anything is written
        for key, value in changes.items():
            setattr(template, key, value)
        _check_template(session, template)
    session.flush()
    return template


# --- planning ------------------------------------------------------------------------------------------


def _providers(session: Session, template: CourseTemplate, provider_id: int | None) -> list[int]:
    ids = list(
        session.scalars(
            select(Provider.id)
            .join(Offered, Offered.provider_id == Provider.id)
            .where(Offered.appointment_type_id == template.session_type_id, Provider.active)
            .order_by(Provider.id)
        )
    )
    if provider_id is not None and provider_id not in ids:
        raise field_error("provider_id", "this provider does not offer the course's sessions")
    return ids


def _candidates(
    session: Session,
    template: CourseTemplate,
    provider_ids: Sequence[int],
    start: datetime,
    end: datetime,
    prefs: Preferences,
) -> list[Candidate]:
    """Free starts of the session type in ``[start, end)`` across ``provider_ids``, sorted by start.

    Each stretch is searched for every provider at once (the chair calendar read once); the preferences are
    checked once per distinct start, which the providers share.
    """
    tz = template.clinic.time_zone
    found: list[Candidate] = []
    allowed: dict[datetime, bool] = {}
    lo = start
    while lo < end:
        hi = min(end, lo + timedelta(days=search.MAX_SEARCH_DAYS))
        free = search.find_slots_of_providers(
            session=session,
            provider_ids=provider_ids,
            appointment_type_id=template.session_type_id,
            start=lo,
            end=hi,
        )
        for provider_id, starts in free.items():
            for at in starts:
                ok = allowed.get(at)
                if ok is None:
                    ok = allowed[at] = prefs.allows(at, tz)
                if ok:
                    found.append(Candidate(at, provider_id))
        lo = hi
    found.sort()  # by start, then provider
    return found


@dataclass(frozen=True)
class Plan:
    """A proposed schedule and, for each session, other starts it could move to."""

    template: CourseTemplate
    sessions: list[Candidate]
    alternatives: list[list[Candidate]]


def plan_course(
    *,
    session: Session,
    template_id: int,
    first_start: datetime | None = None,
    provider_id: int | None = None,
    prefs: Preferences | None = None,
    not_before: datetime | None = None,
) -> Plan:
    """The earliest full schedule from ``first_start`` (or the earliest from ``not_before`` or now).

    422 naming the rule that blocks every plan.
    """
    template = get_template(session=session, template_id=template_id)
    if not template.active:
        raise Conflict("This course template is not taking bookings.", slug="not-bookable")
    prefs = prefs or Preferences()
    spacing = spacing_of(template)
    tz = template.clinic.time_zone
    providers = _providers(session, template, provider_id)
    begin = ensure_utc(first_start or not_before or utcnow())
    window = spacing.within or OPEN_WINDOW
    horizon = utcnow() + timedelta(days=template.session_type.horizon_days)
    # Unanchored, the first session may start a few days on: search a week past the window for it, and
    # a window further each time no first start found so far completes, up to the type's horizon.
    end = begin + window + timedelta(days=1 if first_start is not None else 8)
    candidates = _candidates(session, template, providers, begin, end, prefs)
    while True:
        try:
            # Searched for certain up to min(end, horizon): past the horizon there were no starts to find.
            chosen = _best_plan(template, spacing, candidates, first_start, provider_id, min(end, horizon))
            break
        except Blocked as exc:
            if first_start is not None or end >= horizon:
                raise _unplannable(exc) from None
        candidates += _candidates(session, template, providers, end, end + window, prefs)
        end += window
    return Plan(template, chosen, planner.alternatives(spacing, chosen, candidates, tz))


def replan(
    *,
    session: Session,
    template_id: int,
    sessions: Sequence[Candidate],
    prefs: Preferences | None = None,
) -> Plan:
    """The schedule ``sessions`` as adjusted (422 naming a broken rule), with alternatives ``prefs`` allow."""
    template = get_template(session=session, template_id=template_id)
    if not template.active:
        raise Conflict("This course template is not taking bookings.", slug="not-bookable")
    _check_sessions(template, [{"start": c.start, "provider_id": c.provider_id} for c in sessions])
    spacing = spacing_of(template)
    providers = sorted({c.provider_id for c in sessions})
    if template.same_provider != "required":
        providers = _providers(session, template, None)
    end = ensure_utc(sessions[0].start) + (spacing.within or OPEN_WINDOW) + timedelta(days=1)
    candidates = _candidates(session, template, providers, utcnow(), end, prefs or Preferences())
    tz = template.clinic.time_zone
    return Plan(template, list(sessions), planner.alternatives(spacing, sessions, candidates, tz))


def _best_plan(
    template: CourseTemplate,
    spacing: Spacing,
    candidates: list[Candidate],
    first_start: datetime | None,
    provider_id: int | None,
    until: datetime,
) -> list[Candidate]:
    """The plan finishing earliest with one provider throughout; if none and that is only preferred, any."""
    tz = template.clinic.time_zone
    firsts = _firsts(candidates, first_start, provider_id)
    plans: list[list[Candidate]] = []
    blocked: list[Blocked] = []
    pools = _by_provider(candidates)
    firsts_of = _by_provider(firsts)
    for only in sorted(firsts_of):
        _first_plan(spacing, firsts_of[only], pools[only], (tz, until), plans, blocked)
    if not plans and template.same_provider == "preferred":
        _first_plan(spacing, firsts, candidates, (tz, until), plans, blocked)
    if not plans:
        raise max(blocked, key=lambda b: b.index) if blocked else planner.no_first()
    return min(plans, key=lambda p: (p[-1].start, p[0].start))


def _by_provider(candidates: list[Candidate]) -> dict[int, list[Candidate]]:
    """``candidates`` split by provider, each in the order given, in one pass."""
    split: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        split.setdefault(candidate.provider_id, []).append(candidate)
    return split


def _firsts(
    candidates: list[Candidate], first_start: datetime | None, provider_id: int | None
) -> list[Candidate]:
    """The candidates a course may start with: the provider and the start asked for (422 if none)."""
    firsts = [c for c in candidates if provider_id in (None, c.provider_id)]
    if first_start is None:
        return firsts
    firsts = [c for c in firsts if c.start == ensure_utc(first_start)]
    if not firsts:
        raise field_error("start", "no provider and chair are free then for the first session")
    return firsts


def _first_plan(
    spacing: Spacing,
    firsts: list[Candidate],
    pool: list[Candidate],
    where: tuple[str, datetime],
    plans: list[list[Candidate]],
    blocked: list[Blocked],
) -> None:
    """Append the earliest full plan from one of ``firsts``, or why none completes."""
    try:
        plans.append(planner.earliest(spacing, firsts, pool, where[0], where[1], FIRST_TRIES))
    except Blocked as exc:
        blocked.append(exc)


def _unplannable(blocked: Blocked) -> Unprocessable:
    return Unprocessable(
        blocked.detail + ".",
        slug="course-unplannable",
        extra={"blocked_by": {"rule": blocked.rule, "session": blocked.index}},
    )


# --- booking and changing a course ---------------------------------------------------------------------


def get_course(*, session: Session, course_id: uuid.UUID) -> Course:
    """The course ``course_id`` or 404."""
    course = session.get(Course, course_id)
    if course is None:
        raise NotFound(f"No course {course_id}.")
    return course


def course_for_link(
    *, session: Session, signer: links.LinkSigner, token: str, allow_expired: bool = False
) -> Course:
    """The course a patient's course token opens: 404 if forged or unknown, 410 if expired (unless
    ``allow_expired``: its signature still holds)."""
    try:
        claims = signer.verify(token, purpose=links.COURSE)
    except links.LinkError as exc:
        if exc.claims is None:
            raise NotFound("This link is not valid.", slug="link-invalid") from exc
        if not allow_expired:
            raise Gone("This link has expired.", slug="link-expired") from exc
        claims = exc.claims
    try:
        course_id = uuid.UUID(claims.subject)
    except ValueError as exc:
        raise NotFound("This link is not valid.", slug="link-invalid") from exc
    course = session.get(Course, course_id)
    if course is None:
        raise NotFound("This link is not valid.", slug="link-invalid")
    return course


def course_token(signer: links.LinkSigner, course: Course) -> str:
    """The patient's token for ``course``'s page, valid until a while after its last session."""
    return links.course_token(signer, course_id=str(course.id), ends_at=last_end(course))


def last_end(course: Course) -> datetime:
    """When the course's last session (booster included) ends."""
    return max(b.end_at for b in course.sessions)


def status_of(course: Course, now: datetime | None = None) -> str:
    """``stopped`` (ended early), ``completed`` (every session held), ``active`` (begun) or ``planned``."""
    if course.stopped_at is not None:
        return "stopped"
    now = now or utcnow()
    held = [b for b in course.sessions if b.status == CONFIRMED]
    if held and all(b.end_at <= now for b in held):
        return "completed"
    if any(b.start_at <= now for b in held):
        return "active"
    return "planned"


def _check_sessions(template: CourseTemplate, sessions: Sequence[dict[str, Any]]) -> None:
    """422 naming the session and the rule a requested schedule breaks."""
    if len(sessions) != template.sessions:
        raise field_error("sessions", f"this course has {template.sessions} sessions")
    starts = [ensure_utc(s["start"]) for s in sessions]
    if starts != sorted(starts):
        raise field_error("sessions", "list the sessions in time order")
    if template.same_provider == "required" and len({s["provider_id"] for s in sessions}) > 1:
        raise field_error("sessions", "this course keeps one provider for every session")
    spacing, tz = spacing_of(template), template.clinic.time_zone
    for index in reversed(range(len(starts))):  # name the later of two sessions that clash
        broken = planner.violation(spacing, starts, tz, index)
        if broken is not None:
            raise field_error(f"sessions.{index}.start", f"{broken[1]} ({broken[0]})")


def book_course(
    *,
    session: Session,
    template_id: int,
    sessions: Sequence[dict[str, Any]],
    patient: dict[str, Any] | None = None,
    patient_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    invitation_id: uuid.UUID | None = None,
) -> tuple[Course, bool]:
    """Book every session of a course in the caller's transaction, or raise and book none.

    ``invitation_id``: booked through a private invitation, which the first session spends (and checks).

    Returns the course and whether it was created now (False: an idempotent replay). A session whose time
    another booking holds raises the booking's 409; the caller rolls everything back.
    """
    if idempotency_key and (existing := _by_key(session, idempotency_key)) is not None:
        return _replay(existing, request_hash)
    template = get_template(session=session, template_id=template_id)
    if not template.active:
        raise Conflict("This course template is not taking bookings.", slug="not-bookable")
    _check_sessions(template, sessions)
    # With an Idempotency-Key, the same key may be racing in another request: its unique index decides,
    # inside a savepoint, so that the loser writes nothing and can still answer with the winner's course.
    nested = session.begin_nested() if idempotency_key else None
    try:
        person = _patient(session, template.clinic_id, patient, patient_id)
        course = Course(
            id=uuid.uuid4(),
            clinic_id=template.clinic_id,
            template_id=template.id,
            patient_id=person.id,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        session.add(course)
        session.flush()
        with (
            outbox.course_change(session) as change_id,
            _one_calendar(session, template, sessions),
            search.batched(session),
        ):
            booked = [
                service.book_appointment(
                    session=session,
                    provider_id=wanted["provider_id"],
                    appointment_type_id=template.session_type_id,
                    start=wanted["start"],
                    patient_id=person.id,
                    course=(course.id, index),
                    invitation_id=invitation_id if index == 1 else None,
                )[0]
                for index, wanted in enumerate(sessions, start=1)
            ]
        # The sessions just written, in index order: the answer reads them (and their chairs) without a query.
        set_committed_value(course, "sessions", booked)
        # One confirmation for the whole course: the sessions' own events say this one covers them.
        outbox.record_course_event(
            session, event_id=change_id, course_id=course.id, change=events.COURSE_BOOKED, bookings=booked
        )
        if nested is not None:
            nested.commit()
    except IntegrityError as exc:
        if nested is None or not is_unique_violation(exc):
            raise
        nested.rollback()
        if idempotency_key is None or (existing := _by_key(session, idempotency_key)) is None:
            raise
        return _replay(existing, request_hash)
    return course, True


def _one_calendar(
    session: Session, template: CourseTemplate, sessions: Sequence[dict[str, Any]]
) -> AbstractContextManager[None]:
    """The chair calendar over the whole course, loaded once for every session's hold."""
    starts = [ensure_utc(s["start"]) for s in sessions]
    kind = template.session_type
    return resources.calendar_loaded(session, kind, min(starts), max(starts) + resources.hold_length(kind))


def _patient(
    session: Session, clinic_id: int, details: dict[str, Any] | None, patient_id: uuid.UUID | None
) -> Patient:
    """The course's patient: ``patient_id`` of this clinic, or found by (or made from) ``details``."""
    if patient_id is not None:
        person = catalog.get_patient(session=session, patient_id=patient_id)
        if person.clinic_id != clinic_id:
            raise field_error("patient_id", "this patient belongs to another clinic")
        return person
    assert details is not None
    key = catalog.patient_key(details)
    found = session.scalar(
        select(Patient)
        .where(catalog.same_patient(clinic_id, no_phone=key["phone"] is None))
        .order_by(Patient.created_at)
        .limit(1),
        key,
    )
    return catalog.find_or_create_patient(session=session, clinic_id=clinic_id, details=details, found=found)


def _by_key(session: Session, key: str) -> Course | None:
    return session.scalar(select(Course).where(Course.idempotency_key == key))


def _replay(course: Course, request_hash: str | None) -> tuple[Course, bool]:
    if course.request_hash != request_hash:
        raise field_error(
            "Idempotency-Key", "this key was already used with a different request", location="headers"
        )
    return course, False


def _session(course: Course, index: int) -> Booking:
    booking = next((b for b in course.sessions if b.course_index == index), None)
    if booking is None:
        raise NotFound(f"This course has no session {index}.")
    return booking


def cancel_course(
    *, session: Session, course_id: uuid.UUID, from_index: int | None, by: str, reason: str
) -> tuple[Course, list[Booking]]:
    """Cancel every session from ``from_index`` on (default: all not yet begun); earlier ones stay.

    The course is stopped early, with when, by whom and why. Each cancelled booking records exactly one
    ``booking.cancelled``; sessions already cancelled or begun are left as they are.
    """
    course = get_course(session=session, course_id=course_id)
    now = utcnow()
    if from_index is not None:
        _session(course, from_index)
    cancelled = []
    with outbox.course_change(session) as change_id:
        for booking in course.sessions:
            if booking.status != CONFIRMED or booking.start_at <= now:
                continue
            if from_index is not None and (booking.course_index or 0) < from_index:
                continue
            done, changed = service.cancel_booking(session=session, booking_id=booking.id, by=by)
            if changed:
                cancelled.append(done)
    if course.stopped_at is None and not cancelled and from_index is None:
        # Nothing left to stop: a course whose sessions were all held (or cancelled singly) is no drop-out.
        raise Conflict("This course has no session left to cancel.", slug="course-over")
    if course.stopped_at is None and cancelled:
        course.stopped_at, course.stopped_by, course.stop_reason = now, by, reason
    session.flush()
    if cancelled:  # one notice for every session this change cancelled
        outbox.record_course_event(
            session,
            event_id=change_id,
            course_id=course.id,
            change=events.COURSE_CANCELLED,
            bookings=cancelled,
            cancelled_by=by,
        )
    session.expire(course, ["sessions"])
    return course, cancelled


def reschedule_sessions(
    *, session: Session, course_id: uuid.UUID, index: int, start: datetime, following: bool, by: str
) -> tuple[Course, list[Booking]]:
    """Move session ``index`` to ``start``; with ``following``, the later sessions move with it.

    Later sessions keep their wall-clock distance from it in the clinic's zone. Every rule of the template
    is checked on the whole course as it would be (422 naming the rule); the times themselves are decided
    by the claims (409). Earlier sessions never change; each moved booking records one event.
    """
    course = get_course(session=session, course_id=course_id)
    moving = _session(course, index)
    if moving.status != CONFIRMED:
        raise Conflict("This session is cancelled.", slug="booking-cancelled")
    tz = course.template.clinic.time_zone
    delta = _wall(ensure_utc(start), tz) - _wall(moving.start_at, tz)
    live = [b for b in course.sessions if b.status == CONFIRMED]
    moves = {
        b.id: _from_wall(_wall(b.start_at, tz) + delta, tz)
        for b in live
        if b.id == moving.id or (following and (b.course_index or 0) > index)
    }
    _check_spacing(spacing_of(course.template), sorted(moves.get(b.id, b.start_at) for b in live), tz)
    for booking in live:
        if booking.id in moves:
            service.release_claims(session=session, booking=booking)
    with outbox.course_change(session) if following else nullcontext() as change_id:
        moved = [
            service.reschedule_booking(
                session=session, booking_id=b.id, start=moves[b.id], by=by, course_checked=True
            )
            for b in live
            if b.id in moves
        ]
    if change_id is not None:  # this and the following: one notice for every session moved
        session.flush()
        outbox.record_course_event(
            session,
            event_id=change_id,
            course_id=course.id,
            change=events.COURSE_RESCHEDULED,
            bookings=moved,
        )
    session.expire(course, ["sessions"])
    return course, moved


def _check_spacing(spacing: Spacing, starts: list[datetime], tz: str) -> None:
    """422 naming the first rule of the template that the course's sorted ``starts`` break."""
    for position in range(len(starts)):
        broken = planner.violation(spacing, starts, tz, position)
        if broken is not None:
            raise field_error("start", f"{broken[1]} ({broken[0]})")


def _wall(at: datetime, tz: str) -> datetime:
    return to_zone(at, tz).replace(tzinfo=None)


def _from_wall(wall: datetime, tz: str) -> datetime:
    return local_to_utc(wall.date(), wall.time(), tz)


def add_booster(
    *, session: Session, course_id: uuid.UUID, start: datetime, provider_id: int
) -> tuple[Course, Booking]:
    """Book a booster session of the course's template (the next index); 409 if the course was stopped."""
    course = get_course(session=session, course_id=course_id)
    template = course.template
    if template.booster_type_id is None:
        raise Conflict("This course's template has no booster.", slug="no-booster")
    if course.stopped_at is not None:
        raise Conflict("This course was stopped.", slug="course-stopped")
    index = max((b.course_index or 0) for b in course.sessions) + 1
    booking, _ = service.book_appointment(
        session=session,
        provider_id=provider_id,
        appointment_type_id=template.booster_type_id,
        start=start,
        patient_id=course.patient_id,
        course=(course.id, index),
    )
    session.expire(course, ["sessions"])
    return course, booking
