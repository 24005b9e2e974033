"""Business operations of the consult service: join links checked, access to rooms, status for staff.

A join link names one booking, one version and one participant (shared.links.join_token) and carries the
version's random secret, which only this service keeps. It opens the room only inside the window this service
keeps for the booking's current version; the token's own expiry is just an upper bound.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from services.consult import rooms
from services.consult.models import CANCELLED, Consultation, Room
from services.consult.video import MAX_TOKEN_TTL, VideoError, VideoProvider, VideoUnavailable
from shared.links import (
    JOIN,
    MANAGE,
    PARTICIPANTS,
    PATIENT,
    LinkError,
    LinkSigner,
    join_token,
    secret_matches,
)
from shared.problems import Conflict, Gone, NotFound, Problem
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

# What a join link can find, in the order they are decided.
INVALID = "invalid"  # not a join token of ours
EXPIRED = "expired"  # past the token's own expiry (end + JOIN_LINK_GRACE)
NOT_READY = "not_ready"  # the booking event has not reached us yet (a manage page's join link)
CANCELLED_STATE = "cancelled"
REPLACED = "replaced"  # the booking moved: this version's links were replaced by new ones
UPCOMING = "upcoming"
OPEN = "open"
ENDED = "ended"


class VideoServiceUnavailable(Problem):
    status = 503
    slug = "video-unavailable"


# --- join links ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsultationView:
    """What a join link needs to know of its consultation (read without loading the whole row)."""

    booking_id: uuid.UUID
    version: int
    status: str
    start_at: datetime
    end_at: datetime
    opens_at: datetime
    closes_at: datetime
    patient_time_zone: str
    provider_time_zone: str
    participant_key: str
    link_secret: str | None


@dataclass(frozen=True)
class JoinStatus:
    """What a join link finds."""

    state: str
    participant: str | None = None
    consultation: ConsultationView | None = None
    room: rooms.RoomView | None = None

    @property
    def time_zone(self) -> str | None:
        """The participant's own zone, for the times the page shows."""
        c = self.consultation
        if c is None or self.participant is None:
            return None
        return c.patient_time_zone if self.participant == "patient" else c.provider_time_zone


def identity_of(consultation: ConsultationView, participant: str) -> str:
    """A participant's video identity: the role and the booking's random key, never a name."""
    return f"{participant}-{consultation.participant_key}"


# The consultation with the room of its current version, if one was opened: one round trip.
_JOIN_QUERY = (
    select(
        Consultation.booking_id,
        Consultation.version,
        Consultation.status,
        Consultation.start_at,
        Consultation.end_at,
        Consultation.opens_at,
        Consultation.closes_at,
        Consultation.patient_time_zone,
        Consultation.provider_time_zone,
        Consultation.participant_key,
        Consultation.link_secret,
        Room.unique_name,
        Room.sid,
        Room.status.label("room_status"),
        Room.provider,
        Room.checked_at,
    )
    .outerjoin(Room, and_(Room.booking_id == Consultation.booking_id, Room.version == Consultation.version))
    .where(Consultation.booking_id == bindparam("booking_id"))
)


def _read_join_target(
    session: Session, booking_id: uuid.UUID
) -> tuple[ConsultationView, rooms.RoomView | None] | None:
    # One read in autocommit, on a connection of its own: the caller's session is untouched (docs/modules.md).
    engine = session.get_bind().engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        row = connection.execute(_JOIN_QUERY, {"booking_id": booking_id}).first()
    if row is None:
        return None
    consultation = ConsultationView(*row[:10], link_secret=row.link_secret)
    room = (
        rooms.RoomView(row.unique_name, row.sid, row.room_status, row.provider, row.checked_at)
        if row.sid is not None
        else None
    )
    return consultation, room


def join_status(
    *, session: Session, signer: LinkSigner, token: str, now: datetime | None = None
) -> JoinStatus:
    """Check a join token against the consultation it names; never raises for a bad token."""
    now = now or utcnow()
    try:
        claims = signer.verify(token, purpose=JOIN, now=now)
    except LinkError as exc:
        return JoinStatus(EXPIRED if exc.reason == "expired" else INVALID)
    participant = claims.extra.get("p")
    try:
        booking_id = uuid.UUID(claims.subject)
    except ValueError:
        return JoinStatus(INVALID)
    if participant not in PARTICIPANTS:
        return JoinStatus(INVALID)
    found = _read_join_target(session, booking_id)
    if found is None:
        return JoinStatus(INVALID)  # only this service mints join links, once it holds the consultation
    consultation, room = found
    if claims.version != consultation.version or not secret_matches(claims, consultation.link_secret):
        if claims.version >= consultation.version:
            return JoinStatus(INVALID)  # signed, but not with the version's secret: forged
        # An older version's link (its secret went with its version): say why it stopped, show nothing else.
        return JoinStatus(CANCELLED_STATE if consultation.status == CANCELLED else REPLACED, participant)
    if consultation.status == CANCELLED:
        state = CANCELLED_STATE
    elif now < consultation.opens_at:
        state = UPCOMING
    elif now >= consultation.closes_at - timedelta(seconds=1):
        # Less than a second left is too little for a token: treat it as closed.
        state = ENDED
    else:
        state = OPEN
    return JoinStatus(state, participant, consultation, room)


def patient_token_for_manage_link(
    *, session: Session, signer: LinkSigner, token: str, now: datetime | None = None
) -> str | JoinStatus:
    """The patient's join token of the booking a manage token names (current version only), or why not."""
    try:
        claims = signer.verify(token, purpose=MANAGE, now=now)
        booking_id = uuid.UUID(claims.subject)
    except LinkError as exc:
        return JoinStatus(EXPIRED if exc.reason == "expired" else INVALID)
    except ValueError:
        return JoinStatus(INVALID)
    consultation = session.get(Consultation, booking_id)
    if consultation is None or claims.version > consultation.version or consultation.link_secret is None:
        return JoinStatus(NOT_READY, PATIENT)  # the booking event (or its links) are on their way
    if consultation.status == CANCELLED:
        return JoinStatus(CANCELLED_STATE, PATIENT)
    if claims.version < consultation.version:
        return JoinStatus(REPLACED, PATIENT)
    return join_token(
        signer,
        booking_id=str(booking_id),
        version=consultation.version,
        participant=PATIENT,
        ends_at=consultation.end_at,
        secret=consultation.link_secret,
    )


def refuse(status: JoinStatus) -> Problem:
    """The problem a join link outside its open window answers with."""
    c = status.consultation
    if status.state == INVALID:
        return NotFound("This join link is not valid.", slug="invalid-link")
    if status.state == NOT_READY:
        return Conflict(
            "This consultation is still being set up. Try again in a minute.",
            slug="not-ready",
            headers={"Retry-After": "30"},
        )
    if status.state == CANCELLED_STATE:
        return Gone("This consultation was cancelled.", slug="consultation-cancelled")
    if status.state == REPLACED:
        return Gone(
            "This consultation has moved to a new time. Use the new link we sent you.", slug="link-replaced"
        )
    if status.state == UPCOMING and c is not None:
        return Conflict(
            "The consultation room is not open yet.",
            slug="too-early",
            extra={"opens_at": c.opens_at.isoformat(), "start": c.start_at.isoformat()},
        )
    return Gone("This consultation has ended.", slug="consultation-ended")


@dataclass(frozen=True)
class Grant:
    """What a participant needs to connect to the room."""

    provider: str
    room_name: str
    identity: str
    participant: str
    access_token: str
    expires_at: datetime
    closes_at: datetime


def grant_access(
    *,
    session: Session,
    signer: LinkSigner,
    video: VideoProvider,
    settings: rooms.RoomSettings,
    token: str,
    refresh: bool = False,
) -> Grant:
    """Issue a token for the link's room inside its window, opening (and committing) the room if needed."""
    now = utcnow()
    status = join_status(session=session, signer=signer, token=token, now=now)
    if status.state != OPEN:
        raise refuse(status)
    consultation, room, participant = status.consultation, status.room, status.participant
    assert consultation is not None
    assert participant is not None
    if rooms.needs_provider(room, video, refresh=refresh, now=now):
        # No transaction is open during the provider call (the read above used its own connection): on
        # SQLite an open one would hold the write lock for as long as Twilio takes.
        room = _open_room(session, video, consultation, room, settings)
        now = utcnow()
    assert room is not None
    ttl = min(consultation.closes_at - now, MAX_TOKEN_TTL)
    if ttl < timedelta(seconds=1):
        raise refuse(JoinStatus(ENDED))
    identity = identity_of(consultation, participant)
    access_token = video.access_token(room=room.unique_name, identity=identity, ttl=ttl)
    log.info(
        "access granted",
        extra={"booking_id": str(consultation.booking_id), "participant": participant, "room_sid": room.sid},
    )
    return Grant(
        provider=video.name,
        room_name=room.unique_name,
        identity=identity,
        participant=participant,
        access_token=access_token,
        expires_at=now + timedelta(seconds=int(ttl.total_seconds())),
        closes_at=consultation.closes_at,
    )


def _open_room(
    session: Session,
    video: VideoProvider,
    consultation: ConsultationView,
    known: rooms.RoomView | None,
    settings: rooms.RoomSettings,
) -> rooms.RoomView:
    try:
        info = rooms.open_room(
            video=video,
            booking_id=consultation.booking_id,
            version=consultation.version,
            known=known,
            settings=settings,
        )
    except (VideoUnavailable, VideoError) as exc:
        log.warning(
            "could not open the room", extra={"booking_id": str(consultation.booking_id), "error": str(exc)}
        )
        raise VideoServiceUnavailable(
            "The video service is not answering. Please try again in a moment.", headers={"Retry-After": "5"}
        ) from exc
    room, current = rooms.record_room(
        session=session,
        booking_id=consultation.booking_id,
        version=consultation.version,
        provider=video.name,
        info=info,
    )
    # Commit even when the booking moved meanwhile, so the sweeper completes the room just opened.
    session.commit()
    if not current:
        fresh = session.get(Consultation, consultation.booking_id)
        state = CANCELLED_STATE if fresh is None or fresh.status == CANCELLED else REPLACED
        raise refuse(JoinStatus(state))
    return rooms.RoomView.of(room)


# --- staff view ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsultationStatus:
    """A consultation with its rooms, for staff."""

    consultation: Consultation
    rooms: list[Room]
    window: str


def window_state(consultation: Consultation, now: datetime) -> str:
    """``cancelled``, ``upcoming``, ``open`` or ``closed``."""
    if consultation.status == CANCELLED:
        return "cancelled"
    if now < consultation.opens_at:
        return "upcoming"
    return "open" if now < consultation.closes_at else "closed"


def consultation_status(*, session: Session, booking_id: uuid.UUID) -> ConsultationStatus:
    """The consultation of a video booking, its rooms and link state; 404 if there is none."""
    consultation = session.get(Consultation, booking_id)
    if consultation is None:
        raise NotFound(f"No video consultation for booking {booking_id}.")
    found = list(
        session.scalars(select(Room).where(Room.booking_id == booking_id).order_by(Room.version.desc()))
    )
    return ConsultationStatus(consultation, found, window_state(consultation, utcnow()))
