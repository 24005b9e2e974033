"""Video rooms of consultations: opened on the first join, completed when they are due.

Calls to the video provider never happen inside a database transaction: on SQLite an open transaction holds
the write lock (BEGIN IMMEDIATE), and a slow provider must not stall every other request.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.consult.models import COMPLETED, CONFIRMED, IN_PROGRESS, Consultation, Room
from services.consult.video import RoomInfo, RoomSpec, VideoError, VideoProvider, VideoUnavailable
from shared.db import Database, is_unique_violation
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

# A join that asks to re-check its room (the page could not connect) reaches the provider at most this often.
RECHECK_AFTER = timedelta(seconds=10)


@dataclass(frozen=True)
class RoomView:
    """What a join needs to know of a booking version's recorded room."""

    unique_name: str
    sid: str
    status: str
    provider: str
    checked_at: datetime

    @classmethod
    def of(cls, room: Room) -> RoomView:
        """The view of a stored room."""
        return cls(room.unique_name, room.sid, room.status, room.provider, room.checked_at)


@dataclass(frozen=True)
class RoomSettings:
    """How rooms are created."""

    max_participants: int
    empty_room_timeout: int
    unused_room_timeout: int


def room_name(booking_id: uuid.UUID, version: int) -> str:
    """The unique name of a booking version's room: a new version gets a new room."""
    return f"consult-{booking_id.hex}-v{version}"


def _spec(booking_id: uuid.UUID, version: int, settings: RoomSettings) -> RoomSpec:
    return RoomSpec(
        unique_name=room_name(booking_id, version),
        max_participants=settings.max_participants,
        empty_room_timeout=settings.empty_room_timeout,
        unused_room_timeout=settings.unused_room_timeout,
    )


def needs_provider(room: RoomView | None, video: VideoProvider, *, refresh: bool, now: datetime) -> bool:
    """Whether a join must ask the provider before it can hand out a token for ``room``."""
    if room is None or room.status != IN_PROGRESS or room.provider != video.name:
        return True
    return refresh and now - room.checked_at >= RECHECK_AFTER


def open_room(
    *,
    video: VideoProvider,
    booking_id: uuid.UUID,
    version: int,
    known: RoomView | None,
    settings: RoomSettings,
) -> RoomInfo:
    """Ask the provider for the room of this booking version: the known one if still open, else a new one."""
    if known is not None and known.provider == video.name and known.status == IN_PROGRESS:
        current = video.fetch_room(known.sid)
        if current is not None and current.open:
            return current
        # Twilio closed it (empty or unused too long): the unique name is free again for a new room.
        log.info("room closed by the provider; opening a new one", extra={"room_sid": known.sid})
    return video.create_room(_spec(booking_id, version, settings))


def record_room(
    *, session: Session, booking_id: uuid.UUID, version: int, provider: str, info: RoomInfo
) -> tuple[Room, bool]:
    """Store the room of a booking version; return it and whether that version is still the current one.

    The consultation row is locked first, so a concurrent reschedule or cancellation either sees this room
    (and marks it due) or is seen here (and the room is marked due at once): no room outlives its booking.
    """
    now = utcnow()
    consultation = session.scalar(
        select(Consultation).where(Consultation.booking_id == booking_id).with_for_update()
    )
    current = (
        consultation is not None and consultation.version == version and consultation.status == CONFIRMED
    )
    complete_after = consultation.closes_at if current and consultation else now
    values = {
        "provider": provider,
        "sid": info.sid,
        "status": IN_PROGRESS if info.open else COMPLETED,
        "checked_at": now,
        "complete_after": complete_after,
    }
    room = _room_of(session, booking_id, version)
    if room is None:
        nested = session.begin_nested()
        try:
            room = Room(
                booking_id=booking_id,
                version=version,
                unique_name=room_name(booking_id, version),
                created_at=now,
                **values,
            )
            session.add(room)
            nested.commit()
        except IntegrityError as exc:
            nested.rollback()
            if not is_unique_violation(exc):
                raise
            room = _room_of(session, booking_id, version)
            assert room is not None
    if room.sid != info.sid or room.status != values["status"] or room.provider != provider:
        room.created_at = now
    for key, value in values.items():
        setattr(room, key, value)
    session.flush()
    return room, current


def _room_of(session: Session, booking_id: uuid.UUID, version: int) -> Room | None:
    return session.scalar(
        select(Room).where(Room.booking_id == booking_id, Room.version == version).with_for_update()
    )


def mark_due(*, session: Session, booking_id: uuid.UUID, below_version: int | None, now: datetime) -> None:
    """Make a booking's open rooms due now (those of versions below ``below_version``, or all)."""
    query = update(Room).where(
        Room.booking_id == booking_id, Room.status == IN_PROGRESS, Room.complete_after > now
    )
    if below_version is not None:
        query = query.where(Room.version < below_version)
    session.execute(query.values(complete_after=now))


def complete_due_rooms(
    *, db: Database, video: VideoProvider, booking_id: uuid.UUID | None = None, limit: int = 100
) -> int:
    """Complete the rooms whose time is up; return how many were completed.

    A provider that does not answer leaves the room due; the next sweep tries again. A room opened with a
    provider that is no longer configured cannot be reached: it is closed in our records only (Twilio ends
    an empty room by itself after its empty-room timeout).
    """
    now = utcnow()
    with db.transaction() as session:
        query = (
            select(Room.id, Room.sid, Room.provider)
            .where(Room.status == IN_PROGRESS, Room.complete_after <= now)
            .order_by(Room.complete_after)
            .limit(limit)
        )
        if booking_id is not None:
            query = query.where(Room.booking_id == booking_id)
        due = session.execute(query).all()
    completed = 0
    for room_id, sid, provider in due:
        if provider == video.name:
            try:
                video.complete_room(sid)
            except (VideoUnavailable, VideoError) as exc:
                log.warning(
                    "could not complete a room; will retry", extra={"room_sid": sid, "error": str(exc)}
                )
                continue
        else:
            log.warning("room of another video provider closed in our records only", extra={"room_sid": sid})
        with db.transaction() as session:
            session.execute(
                update(Room)
                .where(Room.id == room_id, Room.sid == sid, Room.status == IN_PROGRESS)
                .values(status=COMPLETED, completed_at=utcnow())
            )
        log.info("room completed", extra={"room_sid": sid})
        completed += 1
    return completed
