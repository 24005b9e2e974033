"""Request and response shapes of the consult API. They check shape and format only."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields

from shared.fields import Flag, Line


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class AccessIn(_Strict):
    refresh = Flag(
        load_default=False,
        metadata={"description": "the page could not connect: check the room with the provider again"},
    )


class AccessOut(Schema):
    provider = fields.String(metadata={"description": "`twilio` or `local`"})
    room_name = fields.String()
    identity = fields.String(metadata={"description": "the participant's role and a booking-scoped key"})
    participant = fields.String(metadata={"description": "`patient` or `provider`"})
    access_token = fields.String(metadata={"description": "a Twilio Video access token for this room only"})
    expires_at = fields.AwareDateTime()
    closes_at = fields.AwareDateTime()


class RoomOut(Schema):
    version = fields.Integer()
    unique_name = fields.String()
    provider = fields.String()
    sid = fields.String()
    status = fields.String(metadata={"description": "`in-progress` or `completed`"})
    created_at = fields.AwareDateTime()
    complete_after = fields.AwareDateTime(metadata={"description": "when the sweeper completes it"})
    completed_at = fields.AwareDateTime(allow_none=True)


class WindowOut(Schema):
    opens_at = fields.AwareDateTime()
    closes_at = fields.AwareDateTime()
    state = fields.String(metadata={"description": "`upcoming`, `open`, `closed` or `cancelled`"})


class LinksOut(Schema):
    version = fields.Integer(metadata={"description": "the booking version the current links are for"})
    issued = fields.Boolean()
    issued_at = fields.AwareDateTime(allow_none=True)
    published = fields.Boolean(metadata={"description": "consult.links_ready is on the queue"})
    published_at = fields.AwareDateTime(allow_none=True)


class ConsultationOut(Schema):
    booking_id = fields.UUID()
    version = fields.Integer()
    status = fields.String()
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    window = fields.Nested(WindowOut)
    links = fields.Nested(LinksOut)
    rooms = fields.List(fields.Nested(RoomOut), metadata={"description": "newest version first"})
    updated_at = fields.AwareDateTime()


class PresenceIn(_Strict):
    access_token = Line(required=True, min_length=1, max_length=4096)


class ParticipantOut(Schema):
    identity = fields.String()
    role = fields.String()
    you = fields.Boolean()


class PresenceOut(Schema):
    room = fields.String()
    status = fields.String()
    identity = fields.String()
    participants = fields.List(fields.Nested(ParticipantOut))
    heartbeat_seconds = fields.Integer()
