"""The local video provider: rooms kept in the consult database and a presence list instead of media."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.consult.models import COMPLETED, IN_PROGRESS, LocalVideoParticipant, LocalVideoRoom
from services.consult.video import RoomInfo, RoomSpec, video_access_token
from shared.db import Database, is_unique_violation
from shared.problems import Conflict, Gone, Unauthorized
from shared.timeutil import utcnow

ACCOUNT_SID = "AC" + "0" * 32
KEY_SID = "SK" + "0" * 32
# A page that stops sending heartbeats (tab closed, laptop asleep) leaves the room after this long.
PRESENCE_TTL = timedelta(seconds=15)
HEARTBEAT_SECONDS = 5


def local_secret(link_signing_key: str) -> str:
    """The key that signs local access tokens, derived so the local provider needs no secret of its own."""
    return hmac.new(link_signing_key.encode(), b"consult.local-video.v1", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Presence:
    """Who is in a local room, as one participant sees it."""

    room: str
    status: str
    identity: str
    participants: list[dict[str, Any]]


class LocalVideo:
    """Rooms in the consult database; tokens the local room page checks itself."""

    name = "local"

    def __init__(self, *, db: Database, secret: str) -> None:
        self.db = db
        self.secret = secret

    def create_room(self, spec: RoomSpec) -> RoomInfo:
        """Create the room, or return the in-progress room of that unique name."""
        with self.db.transaction() as session:
            existing = _live_room(session, spec.unique_name)
            if existing is not None:
                return RoomInfo(sid=existing.sid, status=existing.status)
            nested = session.begin_nested()
            try:
                room = LocalVideoRoom(
                    sid="RM" + uuid.uuid4().hex,
                    unique_name=spec.unique_name,
                    status=IN_PROGRESS,
                    max_participants=spec.max_participants,
                    empty_room_timeout=spec.empty_room_timeout,
                    unused_room_timeout=spec.unused_room_timeout,
                    created_at=utcnow(),
                )
                session.add(room)
                nested.commit()
            except IntegrityError as exc:
                # Another join created it a moment ago: Twilio's "room exists" case.
                nested.rollback()
                if not is_unique_violation(exc):
                    raise
                room = _live_room(session, spec.unique_name)  # type: ignore[assignment]
                assert room is not None
            return RoomInfo(sid=room.sid, status=room.status)

    def fetch_room(self, sid: str) -> RoomInfo | None:
        """The room ``sid`` (or the in-progress room of that unique name), or None."""
        with self.db.transaction() as session:
            room = session.get(LocalVideoRoom, sid) or _live_room(session, sid)
            return RoomInfo(sid=room.sid, status=room.status) if room else None

    def complete_room(self, sid: str) -> RoomInfo | None:
        """Complete the room and send everyone out."""
        with self.db.transaction() as session:
            room = session.get(LocalVideoRoom, sid)
            if room is None:
                return None
            if room.status == IN_PROGRESS:
                room.status = COMPLETED
                room.completed_at = utcnow()
                session.execute(delete(LocalVideoParticipant).where(LocalVideoParticipant.room_sid == sid))
            return RoomInfo(sid=room.sid, status=room.status)

    def access_token(self, *, room: str, identity: str, ttl: timedelta) -> str:
        """A Twilio-style access token for the local room page."""
        return video_access_token(
            account_sid=ACCOUNT_SID,
            key_sid=KEY_SID,
            secret=self.secret,
            room=room,
            identity=identity,
            ttl=ttl,
        )

    def read_token(self, token: str) -> tuple[str, str]:
        """The (room, identity) an access token grants; 401 if it is not one of ours or has expired."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp"]})
            room = claims["grants"]["video"]["room"]
            identity = claims["grants"]["identity"]
        except (jwt.PyJWTError, KeyError, TypeError) as exc:
            raise Unauthorized("This access token is not valid or has expired.") from exc
        if claims.get("iss") != KEY_SID or claims.get("sub") != ACCOUNT_SID:
            raise Unauthorized("This access token is not valid or has expired.")
        return str(room), str(identity)


def _live_room(session: Session, unique_name: str) -> LocalVideoRoom | None:
    return session.scalar(
        select(LocalVideoRoom).where(
            LocalVideoRoom.unique_name == unique_name, LocalVideoRoom.status == IN_PROGRESS
        )
    )


def _room_for(session: Session, unique_name: str) -> LocalVideoRoom:
    room = _live_room(session, unique_name)
    if room is None:
        raise Gone("This room has been closed.", slug="room-completed")
    return room


def _participants(session: Session, room: LocalVideoRoom, now: datetime) -> list[LocalVideoParticipant]:
    return list(
        session.scalars(
            select(LocalVideoParticipant)
            .where(
                LocalVideoParticipant.room_sid == room.sid,
                LocalVideoParticipant.last_seen_at > now - PRESENCE_TTL,
            )
            .order_by(LocalVideoParticipant.joined_at, LocalVideoParticipant.identity)
        )
    )


def _presence(room: LocalVideoRoom, identity: str, present: list[LocalVideoParticipant]) -> Presence:
    return Presence(
        room=room.unique_name,
        status=room.status,
        identity=identity,
        participants=[
            {"identity": p.identity, "role": p.identity.partition("-")[0], "you": p.identity == identity}
            for p in present
        ],
    )


def heartbeat(*, session: Session, video: LocalVideo, token: str) -> Presence:
    """Mark the token's holder present in its room; 409 when the room is full, 410 when it has closed."""
    unique_name, identity = video.read_token(token)
    now = utcnow()
    room = _room_for(session, unique_name)
    # Stale rows go first, so a participant who vanished does not hold a place.
    session.execute(
        delete(LocalVideoParticipant).where(
            LocalVideoParticipant.room_sid == room.sid,
            LocalVideoParticipant.last_seen_at <= now - PRESENCE_TTL,
        )
    )
    me = session.get(LocalVideoParticipant, (room.sid, identity))
    if me is None:
        if len(_participants(session, room, now)) >= room.max_participants:
            raise Conflict("This room is full.", slug="room-full")
        nested = session.begin_nested()
        try:
            session.add(
                LocalVideoParticipant(room_sid=room.sid, identity=identity, joined_at=now, last_seen_at=now)
            )
            nested.commit()
        except IntegrityError as exc:
            # The same participant's previous heartbeat landed a moment ago.
            nested.rollback()
            if not is_unique_violation(exc):
                raise
    else:
        me.last_seen_at = now
    session.flush()
    return _presence(room, identity, _participants(session, room, now))


def leave(*, session: Session, video: LocalVideo, token: str) -> None:
    """Take the token's holder out of its room at once (the page was closed)."""
    unique_name, identity = video.read_token(token)
    room = _live_room(session, unique_name)
    if room is not None:
        session.execute(
            delete(LocalVideoParticipant).where(
                LocalVideoParticipant.room_sid == room.sid, LocalVideoParticipant.identity == identity
            )
        )
