"""HTTP API of the consult service: room access by join link, consultation status for staff, local rooms.

Views are thin: a schema loads the request, one service function does the work, a schema dumps the result.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask.wrappers import Response
from flask_smorest import Blueprint

from services.consult import local_video, service
from services.consult import schemas as s
from services.consult.rooms import RoomSettings
from services.consult.runtime import get_runtime
from shared.api import API_PREFIX, ProblemSchema, public
from shared.db import get_session, unit_of_work
from shared.links import current_signer

# The signed join link is the credential.
join = public(
    Blueprint(
        "join", __name__, url_prefix=f"{API_PREFIX}/join", description="Room access by signed join link"
    )
)
consultations = Blueprint(
    "consultations",
    __name__,
    url_prefix=f"{API_PREFIX}/consultations",
    description="Video consultations: window, links and rooms (staff)",
)
# The room's access token is the credential (and the local stand-in never runs in production).
local_rooms = public(
    Blueprint(
        "local_video",
        __name__,
        url_prefix=f"{API_PREFIX}/local-video",
        description="Presence in the local stand-in rooms (VIDEO_PROVIDER=local only)",
    )
)


@join.after_request
def _no_store(response: Response) -> Response:
    # Access tokens are bearer credentials: never cached, anywhere.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def room_settings() -> RoomSettings:
    """Room creation settings from the config."""
    config = get_runtime().config
    return RoomSettings(
        max_participants=config.room_max_participants,
        empty_room_timeout=config.room_empty_timeout_minutes,
        unused_room_timeout=config.room_unused_timeout_minutes,
    )


# Schema instances, not classes: the hottest endpoint need not build two schemas per request.
_ACCESS_IN, _ACCESS_OUT = s.AccessIn(), s.AccessOut()


@join.route("/<string:token>/access")
class Access(MethodView):
    @join.arguments(_ACCESS_IN, required=False)
    @join.response(200, _ACCESS_OUT)
    @join.alt_response(404, schema=ProblemSchema, description="Not a valid join link")
    @join.alt_response(
        409, schema=ProblemSchema, description="Too early, or the booking is still being set up"
    )
    @join.alt_response(410, schema=ProblemSchema, description="Ended, cancelled, or replaced by a new link")
    @join.alt_response(503, schema=ProblemSchema, description="The video provider is not answering")
    def post(self, data: dict[str, Any], token: str) -> Any:
        """Get an access token for this link's room (opening the room if needed), inside the window only."""
        # grant_access commits the one write it may make (recording a room it opened) itself.
        return service.grant_access(
            session=get_session(),
            signer=current_signer(),
            video=get_runtime().video,
            settings=room_settings(),
            token=token,
            refresh=data["refresh"],
        )


@consultations.route("/<uuid:booking_id>")
class ConsultationItem(MethodView):
    @consultations.response(200, s.ConsultationOut)
    @consultations.alt_response(
        404, schema=ProblemSchema, description="No video consultation for this booking"
    )
    def get(self, booking_id: uuid.UUID) -> Any:
        """A video booking's join window, link status and rooms."""
        return _consultation_body(service.consultation_status(session=get_session(), booking_id=booking_id))


def _consultation_body(status: service.ConsultationStatus) -> dict[str, Any]:
    c = status.consultation
    return {
        "booking_id": c.booking_id,
        "version": c.version,
        "status": c.status,
        "start": c.start_at,
        "end": c.end_at,
        "window": {"opens_at": c.opens_at, "closes_at": c.closes_at, "state": status.window},
        "links": {
            "version": c.version,
            "issued": c.links_issued_at is not None,
            "issued_at": c.links_issued_at,
            "published": c.links_published_at is not None,
            "published_at": c.links_published_at,
        },
        "rooms": status.rooms,
        "updated_at": c.updated_at,
    }


def _local() -> local_video.LocalVideo:
    video = get_runtime().video
    assert isinstance(video, local_video.LocalVideo)
    return video


@local_rooms.route("/presence")
class Presence(MethodView):
    @local_rooms.arguments(s.PresenceIn())
    @local_rooms.response(200, s.PresenceOut)
    @local_rooms.alt_response(401, schema=ProblemSchema, description="Not a valid access token")
    @local_rooms.alt_response(409, schema=ProblemSchema, description="The room is full")
    @local_rooms.alt_response(410, schema=ProblemSchema, description="The room has been completed")
    def post(self, data: dict[str, Any]) -> Any:
        """Say "I am here" (every few seconds) and see who else is in the room."""
        with unit_of_work() as session:
            presence = local_video.heartbeat(session=session, video=_local(), token=data["access_token"])
        return {**presence.__dict__, "heartbeat_seconds": local_video.HEARTBEAT_SECONDS}


@local_rooms.route("/leave")
class Leave(MethodView):
    @local_rooms.arguments(s.PresenceIn())
    @local_rooms.response(204)
    @local_rooms.alt_response(401, schema=ProblemSchema, description="Not a valid access token")
    def post(self, data: dict[str, Any]) -> None:
        """Leave the room now."""
        with unit_of_work() as session:
            local_video.leave(session=session, video=_local(), token=data["access_token"])
