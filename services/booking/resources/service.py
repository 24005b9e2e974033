"""Business operations on a clinic's resources (chairs, rooms) and the time bookings hold them."""

from __future__ import annotations

import bisect
import functools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from services.booking.models import (
    GRANULE_MINUTES,
    AppointmentType,
    Booking,
    BookingResource,
    Clinic,
    Resource,
    ResourceClaim,
    ResourceClosure,
    ResourceHours,
)
from services.booking.slots import DayHours, Window, availability_windows
from shared.db import insert_of
from shared.problems import Conflict, NotFound, field_error
from shared.timeutil import local_date

GRANULE = timedelta(minutes=GRANULE_MINUTES)


# --- the catalog of resources --------------------------------------------------------------------------


def create_resource(
    *,
    session: Session,
    clinic_id: int,
    name: str,
    kind: str,
    hours: Sequence[tuple[int, time, time]],
    active: bool = True,
) -> Resource:
    """Create a resource of ``clinic_id`` open ``hours`` (weekday, start, end in the clinic's zone)."""
    if session.get(Clinic, clinic_id) is None:
        raise NotFound(f"No clinic {clinic_id}.")
    _name_free(session, clinic_id, name, None)
    resource = Resource(clinic_id=clinic_id, name=name, kind=kind, active=active)
    resource.hours = [ResourceHours(weekday=w, start_time=s, end_time=e) for w, s, e in hours]
    session.add(resource)
    session.flush()
    return resource


def _name_free(session: Session, clinic_id: int, name: str, resource_id: int | None) -> None:
    taken = session.scalar(select(Resource.id).where(Resource.clinic_id == clinic_id, Resource.name == name))
    if taken is not None and taken != resource_id:
        raise Conflict(f"A resource named {name!r} exists in this clinic.", slug="resource-name-taken")


def get_resource(*, session: Session, resource_id: int) -> Resource:
    """The resource ``resource_id`` or 404."""
    resource = session.get(Resource, resource_id)
    if resource is None:
        raise NotFound(f"No resource {resource_id}.")
    return resource


def list_resources(
    *, session: Session, clinic_id: int | None = None, kind: str | None = None
) -> Sequence[Resource]:
    """Resources, optionally of one clinic and kind, by id."""
    query = select(Resource).order_by(Resource.id)
    if clinic_id is not None:
        query = query.where(Resource.clinic_id == clinic_id)
    if kind is not None:
        query = query.where(Resource.kind == kind)
    return session.scalars(query).all()


def update_resource(*, session: Session, resource_id: int, changes: dict[str, Any]) -> Resource:
    """Change a resource's name, kind, activity or weekly hours; bookings already holding it stay."""
    resource = get_resource(session=session, resource_id=resource_id)
    if "name" in changes:
        _name_free(session, resource.clinic_id, changes["name"], resource.id)
    hours = changes.pop("hours", None)
    for key, value in changes.items():
        setattr(resource, key, value)
    if hours is not None:
        resource.hours = [ResourceHours(weekday=w, start_time=s, end_time=e) for w, s, e in hours]
    session.flush()
    return resource


def set_closure(*, session: Session, resource_id: int, day: date, reason: str) -> ResourceClosure:
    """Close a resource for one date (maintenance); bookings already holding it that day stay."""
    resource = get_resource(session=session, resource_id=resource_id)
    closure = session.get(ResourceClosure, (resource.id, day))
    if closure is None:
        closure = ResourceClosure(resource_id=resource.id, day=day, reason=reason)
        session.add(closure)
    closure.reason = reason
    session.flush()
    return closure


def clear_closure(*, session: Session, resource_id: int, day: date) -> None:
    """Open a resource again on a date it was closed."""
    get_resource(session=session, resource_id=resource_id)
    session.execute(
        delete(ResourceClosure).where(ResourceClosure.resource_id == resource_id, ResourceClosure.day == day)
    )


# --- what is free --------------------------------------------------------------------------------------


def hold_length(appointment_type: AppointmentType) -> timedelta:
    """How long a booking of this type holds its resource: the visit plus recovery."""
    return timedelta(minutes=appointment_type.duration_minutes + appointment_type.recovery_minutes)


class _Calendar:
    """Resources of one kind with their open windows and held spans over a range, indexed for bisection."""

    def __init__(
        self,
        resources: list[Resource],
        windows: dict[int, list[Window]],
        held: dict[int, list[tuple[datetime, datetime]]],
    ) -> None:
        # Kept, not only their ids: the session's identity map holds them weakly, and a hold reads the one it
        # claims back from it.
        self.resources = resources
        self.ids = [r.id for r in resources]
        self.windows = {rid: sorted(w, key=lambda w: w.start) for rid, w in windows.items()}
        self.window_starts = {rid: [w.start for w in ws] for rid, ws in self.windows.items()}
        # Held spans of one resource never overlap (its claims forbid it), so sorted by start their ends are
        # sorted too.
        self.held = {rid: sorted(h) for rid, h in held.items()}
        self.held_ends = {rid: [end for _, end in h] for rid, h in self.held.items()}

    def gap(self, resource_id: int, start: datetime, end: datetime) -> timedelta | None:
        """The size of the free gap ``[start, end)`` falls in on this resource, or None if not free."""
        i = bisect.bisect_right(self.window_starts[resource_id], start) - 1
        if i < 0 or self.windows[resource_id][i].end < end:
            return None
        lo, hi = self.windows[resource_id][i].start, self.windows[resource_id][i].end
        held = self.held[resource_id]
        j = bisect.bisect_right(self.held_ends[resource_id], start)  # the first span ending after start
        if j < len(held):
            if held[j][0] < end:
                return None
            hi = min(hi, held[j][0])
        if j > 0:
            lo = max(lo, held[j - 1][1])
        return hi - lo

    def take(self, resource_id: int, start: datetime, end: datetime) -> None:
        """Record ``[start, end)`` as held on this resource (a claim this transaction just made)."""
        i = bisect.bisect_right(self.held_ends[resource_id], start)
        self.held[resource_id].insert(i, (start, end))
        self.held_ends[resource_id].insert(i, end)

    def best(self, start: datetime, end: datetime) -> list[int]:
        """The resources free over ``[start, end)``, least fragmenting first (the smallest gap it fits)."""
        scored = [(gap, rid) for rid in self.ids if (gap := self.gap(rid, start, end)) is not None]
        return [rid for _gap, rid in sorted(scored)]


def _calendar(
    session: Session,
    clinic: Clinic,
    kind: str,
    lower: datetime,
    upper: datetime,
    ignore: Iterable[uuid.UUID] = (),
) -> _Calendar:
    """The active resources of ``kind`` in ``clinic``, open and held between ``lower`` and ``upper``."""
    resources = list(
        session.scalars(
            select(Resource)
            .where(Resource.clinic_id == clinic.id, Resource.kind == kind, Resource.active)
            .options(selectinload(Resource.hours), selectinload(Resource.closures))
            .order_by(Resource.id)
        )
    )
    ids = [r.id for r in resources]
    first, last = local_date(lower, clinic.time_zone), local_date(upper, clinic.time_zone)
    windows = {r.id: _windows(r, clinic.time_zone, first, last) for r in resources}
    held: dict[int, list[tuple[datetime, datetime]]] = {rid: [] for rid in ids}
    if ids:
        skip = list(ignore)
        query = select(BookingResource).where(
            BookingResource.resource_id.in_(ids),
            BookingResource.start_at < upper,
            BookingResource.end_at > lower,
        )
        if skip:
            query = query.where(BookingResource.booking_id.not_in(skip))
        for row in session.scalars(query.order_by(BookingResource.start_at)):
            held[row.resource_id].append((row.start_at, row.end_at))
    return _Calendar(resources, windows, held)


# session.info key: calendars loaded once for several holds in one transaction (a whole course).
_LOADED = "resources.calendars"


@contextmanager
def calendar_loaded(
    session: Session, appointment_type: AppointmentType, lower: datetime, upper: datetime
) -> Iterator[None]:
    """Within: holds of this type's kind in ``[lower, upper)`` choose from one calendar loaded now.

    The calendar only orders the candidates; the claims still decide every hold in the database, so a chair
    another transaction took since is skipped as it would be anyway.
    """
    kind = appointment_type.resource_kind
    if kind is None:
        yield
        return
    calendar = _calendar(session, appointment_type.clinic, kind, lower, upper)
    loaded = session.info.setdefault(_LOADED, {})
    loaded[(appointment_type.clinic_id, kind)] = (lower, upper, calendar)
    try:
        yield
    finally:
        loaded.pop((appointment_type.clinic_id, kind), None)


def _loaded(session: Session, clinic_id: int, kind: str, start: datetime, end: datetime) -> _Calendar | None:
    """The calendar ``calendar_loaded`` keeps for this kind, if it covers ``[start, end)``."""
    found = session.info.get(_LOADED, {}).get((clinic_id, kind))
    if found is None or not (found[0] <= start and end <= found[1]):
        return None
    calendar: _Calendar = found[2]
    return calendar


def _windows(resource: Resource, tz: str, first: date, last: date) -> list[Window]:
    weekly: dict[int, list[DayHours]] = {}
    for h in resource.hours:
        weekly.setdefault(h.weekday, []).append(DayHours(h.start_time, h.end_time))
    closed: dict[date, Sequence[DayHours] | None] = {c.day: None for c in resource.closures}
    return availability_windows(weekly=weekly, overrides=closed, tz=tz, first_day=first, last_day=last)


def with_free_resource(
    session: Session,
    appointment_type: AppointmentType,
    starts: Sequence[datetime],
    ignore: Iterable[uuid.UUID] = (),
) -> list[datetime]:
    """The ``starts`` at which some resource of the type's kind is free for the visit and its recovery."""
    kind = appointment_type.resource_kind
    if kind is None or not starts:
        return list(starts)
    length = hold_length(appointment_type)
    calendar = _calendar(session, appointment_type.clinic, kind, min(starts), max(starts) + length, ignore)
    return [s for s in starts if calendar.best(s, s + length)]


# --- holding -------------------------------------------------------------------------------------------


def hold(
    session: Session, booking: Booking, appointment_type: AppointmentType, pinned: int | None = None
) -> bool:
    """Hold a resource for ``booking`` (``pinned``, or the least fragmenting free one); False if none.

    Candidates are tried in order; one another transaction takes at the same moment is skipped by its
    claims and the next is tried, so a booking fails only when every suitable resource is taken.
    """
    kind = appointment_type.resource_kind
    if pinned is None and kind is None:
        set_committed_value(booking, "resource", None)
        return True
    start, end = booking.start_at, booking.start_at + hold_length(appointment_type)
    loaded: _Calendar | None = None
    if pinned is not None:
        resource = _pinnable(session, booking, kind, pinned)
        candidates = [resource.id]
        if (
            _calendar(session, booking.clinic, resource.kind, start, end, [booking.id]).gap(
                resource.id, start, end
            )
            is None
        ):
            return False
    else:
        assert kind is not None
        loaded = _loaded(session, booking.clinic_id, kind, start, end)
        calendar = loaded or _calendar(session, booking.clinic, kind, start, end, [booking.id])
        candidates = calendar.best(start, end)
    for resource_id in candidates:
        if _claim(session, booking.id, resource_id, start, end):
            if loaded is not None:
                loaded.take(resource_id, start, end)
            session.add(
                BookingResource(
                    booking_id=booking.id,
                    resource_id=resource_id,
                    start_at=start,
                    end_at=end,
                    pinned=pinned is not None,
                )
            )
            session.flush()
            set_committed_value(booking, "resource", session.get(Resource, resource_id))
            return True
        release(session, booking.id)
    return False


def _pinnable(session: Session, booking: Booking, kind: str | None, resource_id: int) -> Resource:
    resource = session.get(Resource, resource_id)
    if resource is None or resource.clinic_id != booking.clinic_id:
        raise field_error("resource_id", "no such resource in this clinic")
    if kind is not None and resource.kind != kind:
        raise field_error("resource_id", f"this appointment type needs a resource of kind {kind!r}")
    if not resource.active:
        raise field_error("resource_id", "this resource is not in use")
    return resource


def _claim(session: Session, booking_id: uuid.UUID, resource_id: int, start: datetime, end: datetime) -> bool:
    """Claim the granules of ``[start, end)`` on one resource; whether every one was free."""
    at = _floor(start)
    rows = []
    while at < end:
        rows.append({"resource_id": resource_id, "at": at, "booking_id": booking_id})
        at += GRANULE
    claimed = session.connection().execute(_claims_insert(session.get_bind().dialect.name), rows)
    return len(claimed.all()) == len(rows)


def _floor(at: datetime) -> datetime:
    """``at`` rounded down to the 5-minute grid (starts are on it; this keeps any stray start safe)."""
    return at - timedelta(minutes=at.minute % GRANULE_MINUTES, seconds=at.second, microseconds=at.microsecond)


@functools.cache
def _claims_insert(dialect: str) -> Any:
    claims = ResourceClaim.metadata.tables["resource_claims"]
    return insert_of(dialect)(claims).on_conflict_do_nothing().returning(claims.c.at)


def release(session: Session, booking_id: uuid.UUID) -> int | None:
    """Give back whatever resource ``booking_id`` holds; the resource staff had pinned it to, if any."""
    pinned = session.scalar(
        select(BookingResource.resource_id).where(
            BookingResource.booking_id == booking_id, BookingResource.pinned
        )
    )
    session.execute(delete(ResourceClaim).where(ResourceClaim.booking_id == booking_id))
    session.execute(delete(BookingResource).where(BookingResource.booking_id == booking_id))
    return pinned


def move(*, session: Session, booking: Booking, resource_id: int) -> Booking:
    """Staff: move a confirmed booking to another resource (pinned there); 409 if that one is taken.

    The booking's version does not change: patient and provider see the same visit.
    """
    if booking.status != "confirmed":
        raise Conflict("A cancelled booking holds no resource.", slug="booking-cancelled")
    release(session, booking.id)
    session.flush()
    if not hold(session, booking, booking.appointment_type, resource_id):
        raise Conflict(
            "That resource is not free for this visit and its recovery.", slug="resource-unavailable"
        )
    return booking
