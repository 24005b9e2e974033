"""Twilio Video rooms through the Rooms REST API, and access tokens signed with a Twilio API key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from services.consult.config import ConsultConfig
from services.consult.video import RoomInfo, RoomSpec, VideoError, VideoUnavailable, video_access_token

log = logging.getLogger(__name__)
# twilio-python logs each request and response at INFO (URLs, headers): noise unless debugging.
http_log = logging.getLogger(__name__ + ".http")
http_log.setLevel(logging.WARNING)
T = TypeVar("T")

ROOM_EXISTS = 53113  # "Room exists": an in-progress room already has this unique name
ROOM_NOT_FOUND = 53106
TwilioFailure = (TwilioRestException, TwilioServiceException)


def _status(exc: TwilioRestException | TwilioServiceException) -> int:
    return int(exc.status or 0)


def _code(exc: TwilioRestException | TwilioServiceException) -> int | None:
    return int(exc.code) if exc.code is not None else None


class TwilioVideo:
    """Rooms on Twilio Video (type ``group``), tokens signed with an API key."""

    name = "twilio"

    def __init__(self, *, client: Client, account_sid: str, api_key_sid: str, api_key_secret: str) -> None:
        self.client = client
        self.account_sid = account_sid
        self.api_key_sid = api_key_sid
        self.api_key_secret = api_key_secret

    @classmethod
    def from_config(cls, config: ConsultConfig, *, http_client: HttpClient | None = None) -> TwilioVideo:
        """A provider with a REST client authenticated by the API key (revocable, unlike the auth token)."""
        client = Client(
            config.twilio_api_key_sid,
            config.twilio_api_key_secret,
            config.twilio_account_sid,
            http_client=http_client
            or TwilioHttpClient(timeout=config.twilio_timeout_seconds, logger=http_log),
        )
        if config.twilio_video_base_url:
            client.video.base_url = config.twilio_video_base_url.rstrip("/")
        return cls(
            client=client,
            account_sid=config.twilio_account_sid,
            api_key_sid=config.twilio_api_key_sid,
            api_key_secret=config.twilio_api_key_secret,
        )

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """Run a REST call; turn transport failures, 429 and 5xx into VideoUnavailable."""
        try:
            return call()
        except requests.RequestException as exc:
            log.warning("twilio video unreachable", extra={"call": what, "error": type(exc).__name__})
            raise VideoUnavailable(f"{what}: Twilio did not answer") from exc
        except TwilioFailure as exc:
            if _status(exc) == 429 or _status(exc) >= 500:
                log.warning(
                    "twilio video unavailable",
                    extra={"call": what, "status": _status(exc), "code": _code(exc)},
                )
                raise VideoUnavailable(f"{what}: Twilio answered {_status(exc)}") from exc
            raise

    def create_room(self, spec: RoomSpec) -> RoomInfo:
        """Create a group room; Twilio's "room exists" answer means another join created it first."""
        try:
            room = self._call(
                "create room",
                lambda: self.client.video.v1.rooms.create(
                    type="group",
                    unique_name=spec.unique_name,
                    max_participants=spec.max_participants,
                    empty_room_timeout=spec.empty_room_timeout,
                    unused_room_timeout=spec.unused_room_timeout,
                    # Consultations are never recorded.
                    record_participants_on_connect=False,
                ),
            )
        except TwilioFailure as exc:
            if _code(exc) != ROOM_EXISTS:
                raise VideoError(f"Twilio refused the room ({_status(exc)}, code {_code(exc)})") from exc
            # An in-progress room's unique name addresses it in place of its SID.
            existing = self.fetch_room(spec.unique_name)
            if existing is None or not existing.open:
                raise VideoUnavailable("the room that existed a moment ago has just closed") from exc
            log.info("room already existed", extra={"room_sid": existing.sid})
            return existing
        return RoomInfo(sid=str(room.sid), status=str(room.status))

    def fetch_room(self, sid: str) -> RoomInfo | None:
        """The room ``sid`` (or unique name, while it is in progress), or None."""
        try:
            room = self._call("fetch room", lambda: self.client.video.v1.rooms(sid).fetch())
        except TwilioFailure as exc:
            if _status(exc) == 404 or _code(exc) == ROOM_NOT_FOUND:
                return None
            raise VideoError(f"Twilio refused to read the room ({_status(exc)}, code {_code(exc)})") from exc
        return RoomInfo(sid=str(room.sid), status=str(room.status))

    def complete_room(self, sid: str) -> RoomInfo | None:
        """Set the room's status to completed; a room that already ended is left as it is."""
        try:
            room = self._call(
                "complete room", lambda: self.client.video.v1.rooms(sid).update(status="completed")
            )
        except TwilioFailure as exc:
            # Twilio refuses to complete a room that is no longer in progress: look before deciding.
            current = self.fetch_room(sid)
            if current is None or not current.open:
                return current
            raise VideoError(
                f"Twilio refused to complete the room ({_status(exc)}, code {_code(exc)})"
            ) from exc
        return RoomInfo(sid=str(room.sid), status=str(room.status))

    def access_token(self, *, room: str, identity: str, ttl: timedelta) -> str:
        """An AccessToken for ``identity`` in ``room`` only, signed with the API key."""
        return video_access_token(
            account_sid=self.account_sid,
            key_sid=self.api_key_sid,
            secret=self.api_key_secret,
            room=room,
            identity=identity,
            ttl=ttl,
        )
