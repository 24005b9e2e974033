"""Slot search: the starts a provider has free for an appointment type, and a cache that keeps it cheap."""

from __future__ import annotations

import bisect
import json
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import Session, lazyload

from services.booking.models import (
    AppointmentType,
    AvailabilityOverride,
    AvailabilityRule,
    Booking,
    Provider,
    ProviderAppointmentType,
)
from services.booking.resources import service as resources
from services.booking.slots import (
    DayHours,
    SlotRules,
    Window,
    availability_windows,
    free_slots,
    offers,
)
from shared.cache import Lru
from shared.problems import Conflict, NotFound, field_error
from shared.timeutil import day_bounds_utc, ensure_utc, local_date, to_zone, utcnow

MAX_SEARCH_DAYS = 62
CONFIRMED = "confirmed"


def rules_of(appointment_type: AppointmentType) -> SlotRules:
    """The slot rules of an appointment type."""
    return SlotRules(
        duration=timedelta(minutes=appointment_type.duration_minutes),
        buffer_before=timedelta(minutes=appointment_type.buffer_before_minutes),
        buffer_after=timedelta(minutes=appointment_type.buffer_after_minutes),
        interval=timedelta(minutes=appointment_type.slot_interval_minutes),
        min_notice=timedelta(minutes=appointment_type.min_notice_minutes),
        horizon=timedelta(days=appointment_type.horizon_days),
        daily_limit=appointment_type.daily_limit,
        provider_hold=(
            None
            if appointment_type.provider_minutes is None
            else timedelta(minutes=appointment_type.provider_minutes)
        ),
    )


def bump_schedule(session: Session, provider_ids: list[int] | int, *, hours: bool = False) -> None:
    """Mark providers' free time as changed, in the caller's transaction; ``hours``: their hours changed too.

    Booking changes call this last, just before commit: the provider's row stays locked only for the commit,
    and since it is the last lock taken (claims are inserted in ascending order before it) no two changes
    can wait on each other in a cycle.
    """
    ids = [provider_ids] if isinstance(provider_ids, int) else provider_ids
    if not ids:
        return
    deferred: set[int] | None = session.info.get(_DEFERRED)
    if deferred is not None and not hours:
        deferred.update(ids)
        return
    if not hours:
        # On the path of every booking: a Core statement, without the ORM's bulk-update machinery.
        session.connection().execute(_BUMP, {"provider_ids": ids})
        return
    session.execute(
        update(Provider)
        .where(Provider.id.in_(ids))
        .values(schedule_version=Provider.schedule_version + 1, hours_version=Provider.hours_version + 1)
        # A change of hours may be followed by a booking in the same session, which must not see the old
        # hours_version of a provider already loaded.
        .execution_options(synchronize_session="fetch")
    )


# session.info keys: providers whose bump waits for the end of several bookings (a course), and the offers
# those bookings read.
_DEFERRED = "search.deferred_bumps"
_OFFERS = "search.batch_offers"


@contextmanager
def batched(session: Session) -> Iterator[None]:
    """Within: several bookings in one transaction (a course) read each offer once, bump each provider once.

    The bump is at the end, still the last lock the bookings take, in one statement; on an error nothing is
    bumped (the caller rolls back). An offer read again in the same transaction would give the same objects
    from the identity map, so keeping it changes no check.
    """
    pending: set[int] = set()
    session.info[_DEFERRED] = pending
    session.info[_OFFERS] = {}
    try:
        yield
    finally:
        session.info.pop(_DEFERRED, None)
        session.info.pop(_OFFERS, None)
    bump_schedule(session, sorted(pending))


_PROVIDERS = Provider.metadata.tables["providers"]
_BUMP = (
    update(_PROVIDERS)
    .where(_PROVIDERS.c.id.in_(bindparam("provider_ids", expanding=True)))
    .values(schedule_version=_PROVIDERS.c.schedule_version + 1)
)


@dataclass(frozen=True)
class Offer:
    """A provider offering an appointment type, as the search needs them."""

    provider: Provider
    appointment_type: AppointmentType

    @property
    def rules(self) -> SlotRules:
        return rules_of(self.appointment_type)


def _offer_select(*columns: Any) -> Any:
    """``columns`` of provider :provider_id and type :type_id, with whether the provider offers the type."""
    return (
        select(*columns)
        .select_from(Provider)
        .join(AppointmentType, AppointmentType.id == bindparam("type_id"))
        .outerjoin(
            ProviderAppointmentType,
            and_(
                ProviderAppointmentType.provider_id == Provider.id,
                ProviderAppointmentType.appointment_type_id == AppointmentType.id,
            ),
        )
        .where(Provider.id == bindparam("provider_id"))
    )


# Built once: offer() runs on every booking, and building the statement cost more than running it.
# Parameters: provider_id, type_id. Rows: (Provider, AppointmentType, offered), read by checked_offer().
OFFER = _offer_select(Provider, AppointmentType, ProviderAppointmentType.provider_id).options(
    # The type's clinic is the provider's, already joined for the provider: taken from the identity map.
    lazyload(AppointmentType.clinic)
)


def offer(session: Session, provider_id: int, appointment_type_id: int) -> Offer:
    """The provider and type in one query; 404 if either is unknown, 422 if not offered, 409 if paused."""
    kept: dict[tuple[int, int], Offer] | None = session.info.get(_OFFERS)
    if kept is not None and (found := kept.get((provider_id, appointment_type_id))) is not None:
        return found
    row = session.execute(OFFER, {"provider_id": provider_id, "type_id": appointment_type_id}).first()
    found = checked_offer(session, row, provider_id, appointment_type_id)
    if kept is not None:
        kept[(provider_id, appointment_type_id)] = found
    return found


def checked_offer(session: Session, row: Any, provider_id: int, appointment_type_id: int) -> Offer:
    """The Offer in ``row``, a row of OFFER (or of a query extending it); raises like offer()."""
    if row is None:
        if session.get(Provider, provider_id) is None:
            raise NotFound(f"No provider {provider_id}.")
        raise NotFound(f"No appointment type {appointment_type_id}.")
    provider, appointment_type, offered = row[0], row[1], row[2]
    if offered is None:
        raise field_error("appointment_type_id", "this provider does not offer this appointment type")
    if not provider.active or not appointment_type.active:
        raise Conflict("This provider or appointment type is not taking bookings.", slug="not-bookable")
    return Offer(provider, appointment_type)


def _windows(session: Session, provider: Provider, first_day: date, last_day: date) -> list[Window]:
    weekly: dict[int, list[DayHours]] = {}
    closed: set[date] = set()
    changed: dict[date, list[DayHours]] = {}
    rules = select(AvailabilityRule.weekday, AvailabilityRule.start_time, AvailabilityRule.end_time).where(
        AvailabilityRule.provider_id == provider.id
    )
    for rule in session.execute(rules):
        weekly.setdefault(rule.weekday, []).append(DayHours(rule.start_time, rule.end_time))
    for row in session.scalars(
        select(AvailabilityOverride).where(
            AvailabilityOverride.provider_id == provider.id,
            AvailabilityOverride.day >= first_day,
            AvailabilityOverride.day <= last_day,
        )
    ):
        if row.closed:
            closed.add(row.day)
        elif row.start_time is not None and row.end_time is not None:
            changed.setdefault(row.day, []).append(DayHours(row.start_time, row.end_time))
    overrides: dict[date, list[DayHours] | None] = dict.fromkeys(closed)
    overrides.update({day: hours for day, hours in changed.items() if day not in closed})
    return availability_windows(
        weekly=weekly, overrides=overrides, tz=provider.time_zone, first_day=first_day, last_day=last_day
    )


def _day_windows(session: Session, provider: Provider, day: date) -> list[Window]:
    """The provider's hours on one local day, cached by ``hours_version`` (bookings do not change it).

    A miss loads the whole month around ``day``: bookings spread over many days, and two queries a day
    would cost more than the month's arithmetic.
    """
    key = (_database_key(session), provider.id, provider.hours_version, day.year, day.month)
    month: dict[date, list[Window]] | None = _HOURS.get(key)
    if month is None:
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        month = {}
        for window in _windows(session, provider, first, last):
            month.setdefault(local_date(window.start, provider.time_zone), []).append(window)
        _HOURS.put(key, month)
    return month.get(day, [])


def offers_start(session: Session, found: Offer, start: datetime, now: datetime) -> bool:
    """Whether the provider's hours, the type's grid and the clock allow a booking at ``start``.

    Other bookings are not looked at: the slot and day claims decide those, in the database.
    """
    provider = found.provider
    windows = _day_windows(session, provider, local_date(start, provider.time_zone))
    return offers(start, windows=windows, rules=found.rules, now=now)


def candidate_starts(
    session: Session, found: Offer, start: datetime, end: datetime, ignore_booking_id: uuid.UUID | None
) -> list[datetime]:
    """Free starts in ``[start, end)`` ignoring the clock (notice and horizon are applied by the caller)."""
    provider, rules = found.provider, found.rules
    tz = provider.time_zone
    first_day, last_day = local_date(start, tz), local_date(end, tz)
    # Bookings whose blocks could touch a candidate, and all of this type on the days searched (for limits).
    pad = rules.duration + rules.buffer_before + rules.buffer_after + timedelta(days=1)
    lower, upper = day_bounds_utc(first_day, tz)[0] - pad, day_bounds_utc(last_day, tz)[1] + pad
    query = (
        select(Booking.block_start, Booking.block_end, Booking.start_at, Booking.appointment_type_id)
        .where(
            Booking.provider_id == provider.id,
            Booking.status == CONFIRMED,
            Booking.block_start < upper,
            Booking.block_end > lower,
        )
        .order_by(Booking.block_start)
    )
    if ignore_booking_id is not None:
        query = query.where(Booking.id != ignore_booking_id)
    rows = session.execute(query).all()
    type_id = found.appointment_type.id
    return free_slots(
        windows=_windows(session, provider, first_day, last_day),
        blocks=[(r.block_start, r.block_end) for r in rows],
        day_counts=Counter(local_date(r.start_at, tz) for r in rows if r.appointment_type_id == type_id),
        rules=SlotRules(**{**rules.__dict__, "min_notice": timedelta(0), "horizon": timedelta(days=36500)}),
        provider_tz=tz,
        now=start,
        range_start=start,
        range_end=end,
    )


_CANDIDATES = Lru(512)
_RENDERED = Lru(1024)
_HOURS = Lru(2048)  # (provider, month) entries


def _database_key(session: Session) -> str:
    """Which database a cache entry belongs to (tests and tools run several in one process)."""
    return session.get_bind().engine.url.render_as_string()


def _cached_candidates(
    session: Session, found: Offer, start: datetime, end: datetime
) -> tuple[Any, list[datetime]]:
    key = (
        _database_key(session),
        found.provider.id,
        found.appointment_type.id,
        start,
        end,
        found.provider.schedule_version,
    )
    cached = _CANDIDATES.get(key)
    if cached is None:
        cached = candidate_starts(session, found, start, end, None)
        _CANDIDATES.put(key, cached)
    return key, cached


def _check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = ensure_utc(start), ensure_utc(end)
    if end <= start:
        raise field_error("end", "must be after start", location="query")
    if end - start > timedelta(days=MAX_SEARCH_DAYS):
        raise field_error("end", f"a search spans at most {MAX_SEARCH_DAYS} days", location="query")
    return start, end


def bookable_range(candidates: list[datetime], rules: SlotRules, now: datetime) -> tuple[int, int]:
    """The index range of ``candidates`` that the clock allows now (notice and horizon)."""
    return _clock_range(candidates, rules.min_notice, rules.horizon, now)


def _clock_range(
    candidates: list[datetime], min_notice: timedelta, horizon: timedelta, now: datetime
) -> tuple[int, int]:
    lo = bisect.bisect_left(candidates, now + min_notice)
    hi = bisect.bisect_right(candidates, now + horizon)
    return lo, max(lo, hi)


def find_slots(
    *,
    session: Session,
    provider_id: int,
    appointment_type_id: int,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    ignore_booking_id: uuid.UUID | None = None,
) -> list[datetime]:
    """Start instants (UTC) of the free slots beginning in ``[start, end)``."""
    start, end = _check_range(start, end)
    found = offer(session, provider_id, appointment_type_id)
    starts = _bookable(session, found, start, end, now or utcnow(), ignore_booking_id)
    ignore = () if ignore_booking_id is None else (ignore_booking_id,)
    return resources.with_free_resource(session, found.appointment_type, starts, ignore)


def _bookable(
    session: Session,
    found: Offer,
    start: datetime,
    end: datetime,
    now: datetime,
    ignore_booking_id: uuid.UUID | None = None,
) -> list[datetime]:
    """The provider's free starts in ``[start, end)`` the clock allows, before any resource is looked at."""
    if ignore_booking_id is None:
        _key, candidates = _cached_candidates(session, found, start, end)
    else:
        candidates = candidate_starts(session, found, start, end, ignore_booking_id)
    lo, hi = bookable_range(candidates, found.rules, now)
    return candidates[lo:hi]


def find_slots_of_providers(
    *,
    session: Session,
    provider_ids: Sequence[int],
    appointment_type_id: int,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> dict[int, list[datetime]]:
    """``find_slots`` of each provider, with the resource calendar read once for them all.

    A course plan asks every provider of a busy clinic at once: one calendar over the range, each distinct
    start checked once, where ``find_slots`` per provider would read and check the chairs per provider.
    """
    start, end = _check_range(start, end)
    now = now or utcnow()
    offered = [offer(session, provider_id, appointment_type_id) for provider_id in provider_ids]
    starts = {found.provider.id: _bookable(session, found, start, end, now) for found in offered}
    if not offered:
        return starts
    every = sorted({at for found in starts.values() for at in found})
    free = set(resources.with_free_resource(session, offered[0].appointment_type, every))
    return {provider_id: [at for at in found if at in free] for provider_id, found in starts.items()}


def first_available_slots(
    *,
    session: Session,
    appointment_type_id: int,
    start: datetime,
    end: datetime,
    provider_ids: Sequence[int] | None = None,
) -> list[tuple[datetime, int]]:
    """Free starts in ``[start, end)`` across the active providers offering a type: (start, provider id).

    Where several providers are free at one time, the one with the lowest id is offered.
    """
    query = (
        select(Provider.id)
        .join(ProviderAppointmentType, ProviderAppointmentType.provider_id == Provider.id)
        .where(ProviderAppointmentType.appointment_type_id == appointment_type_id, Provider.active)
        .order_by(Provider.id)
    )
    chosen: dict[datetime, int] = {}
    for provider_id in session.scalars(query):
        if provider_ids is not None and provider_id not in provider_ids:
            continue
        for at in find_slots(
            session=session,
            provider_id=provider_id,
            appointment_type_id=appointment_type_id,
            start=start,
            end=end,
        ):
            chosen.setdefault(at, provider_id)
    return sorted(chosen.items())


# What the slot search API needs to answer from the caches: the schedule version (the cache key), the
# flags that make a search an error, and what the clock and the rendering need. Columns, not ORM objects:
# this is the one query of a cached answer, asked on every request.
_SEARCH_KEY = _offer_select(
    Provider.schedule_version,
    Provider.time_zone,
    Provider.active.label("provider_active"),
    AppointmentType.active.label("type_active"),
    AppointmentType.duration_minutes,
    AppointmentType.min_notice_minutes,
    AppointmentType.horizon_days,
    AppointmentType.resource_kind,
    ProviderAppointmentType.provider_id.label("offered"),
)


def slots_json(
    *,
    session: Session,
    provider_id: int,
    appointment_type_id: int,
    start: datetime,
    end: datetime,
    tz: str | None,
) -> str:
    """The slot search answer as JSON text, slots expressed in ``tz`` (default: the provider's zone)."""
    start, end = _check_range(start, end)
    row = (
        session.connection()
        .execute(_SEARCH_KEY, {"provider_id": provider_id, "type_id": appointment_type_id})
        .first()
    )
    if row is None or row.offered is None or not (row.provider_active and row.type_active):
        offer(session, provider_id, appointment_type_id)  # raises the 404, 422 or 409 that says why
        raise AssertionError("offer() accepted what the search key refused")
    key = (_database_key(session), provider_id, appointment_type_id, start, end, row.schedule_version)
    candidates: list[datetime] | None = _CANDIDATES.get(key)
    if candidates is None:
        found = offer(session, provider_id, appointment_type_id)
        key, candidates = _cached_candidates(session, found, start, end)
    zone_name = tz or row.time_zone
    lo, hi = _clock_range(
        candidates, timedelta(minutes=row.min_notice_minutes), timedelta(days=row.horizon_days), utcnow()
    )
    render_key = (key, zone_name, lo, hi)
    starts = candidates[lo:hi]
    body: str | None = _RENDERED.get(render_key)
    if row.resource_kind is not None:
        # Other providers' bookings take chairs too, so the chair filter is applied fresh, never cached.
        found = offer(session, provider_id, appointment_type_id)
        starts, body = resources.with_free_resource(session, found.appointment_type, starts), None
    if body is None:
        duration = timedelta(minutes=row.duration_minutes)
        body = json.dumps(
            {
                "provider_id": provider_id,
                "appointment_type_id": appointment_type_id,
                "time_zone": zone_name,
                "provider_time_zone": row.time_zone,
                "slots": [
                    {
                        "start": to_zone(s, zone_name).isoformat(),
                        "end": to_zone(s + duration, zone_name).isoformat(),
                    }
                    for s in starts
                ],
            }
        )
        if row.resource_kind is None:
            _RENDERED.put(render_key, body)
    return body


def nearest_free(
    *,
    session: Session,
    provider_id: int,
    appointment_type_id: int,
    around: datetime,
    count: int = 3,
    ignore_booking_id: uuid.UUID | None = None,
) -> list[datetime]:
    """Up to ``count`` free starts nearest to ``around`` (within a week either side)."""
    now = utcnow()
    starts = find_slots(
        session=session,
        provider_id=provider_id,
        appointment_type_id=appointment_type_id,
        start=max(now, around - timedelta(days=7)),
        end=max(now, around) + timedelta(days=7),
        now=now,
        ignore_booking_id=ignore_booking_id,
    )
    return sorted(starts, key=lambda s: (abs(s - around), s))[:count]
