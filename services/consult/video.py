"""The video provider interface: rooms and access tokens, from Twilio Video or the local stand-in.

Both implementations answer the same contract (tests/consult/test_video_contract.py runs it on each):
creating a room is idempotent by unique name while the room is in progress, completing one is idempotent,
and an access token is a Twilio-style JWT granting one identity one room for a bounded time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

from services.consult.models import COMPLETED, IN_PROGRESS

# Twilio refuses access tokens that live longer than a day.
MAX_TOKEN_TTL = timedelta(hours=24)
FINISHED = frozenset({COMPLETED, "failed"})


class VideoUnavailable(Exception):
    """The provider did not answer or asked us to come back later (network, 429, 5xx): try again."""


class VideoError(Exception):
    """The provider refused a request for good (a 4xx other than 429)."""


@dataclass(frozen=True)
class RoomSpec:
    """What a room is created with."""

    unique_name: str
    max_participants: int
    empty_room_timeout: int
    unused_room_timeout: int


@dataclass(frozen=True)
class RoomInfo:
    """A room as the provider reports it."""

    sid: str
    status: str

    @property
    def open(self) -> bool:
        """Whether participants can still connect."""
        return self.status == IN_PROGRESS


class VideoProvider(Protocol):
    """Where consultation rooms live."""

    name: str

    def create_room(self, spec: RoomSpec) -> RoomInfo:
        """Create the room, or return the in-progress room that already has ``spec.unique_name``."""
        ...

    def fetch_room(self, sid: str) -> RoomInfo | None:
        """The room ``sid``, or None if the provider has no such room."""
        ...

    def complete_room(self, sid: str) -> RoomInfo | None:
        """End the room so nobody can use it again (a finished or unknown room is fine)."""
        ...

    def access_token(self, *, room: str, identity: str, ttl: timedelta) -> str:
        """A JWT that lets ``identity`` join room ``room`` (unique name) for at most ``ttl``."""
        ...


def video_access_token(
    *, account_sid: str, key_sid: str, secret: str, room: str, identity: str, ttl: timedelta
) -> str:
    """A Twilio AccessToken with a VideoGrant for one room only."""
    seconds = int(min(ttl, MAX_TOKEN_TTL).total_seconds())
    if seconds <= 0:
        raise ValueError("an access token needs a positive lifetime")
    token = AccessToken(
        account_sid, key_sid, secret, identity=identity, ttl=seconds, grants=[VideoGrant(room=room)]
    )
    return str(token.to_jwt())
