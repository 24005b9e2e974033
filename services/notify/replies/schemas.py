"""Request and response shapes of the staff API's inbound SMS list."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class ReplyFilter(Schema):
    """Filters of the list of inbound SMS."""

    kept = fields.Boolean(
        load_default=True, metadata={"description": "only the replies no keyword understood (for staff)"}
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ReplyOut(Schema):
    """An inbound SMS: what it meant and what was done; its text only when no keyword understood it."""

    id = fields.Integer()
    received_at = fields.AwareDateTime()
    phone = fields.String(metadata={"description": "the sender, to call back"})
    intent = fields.String(metadata={"description": "confirm, change, other, stop, start or help"})
    outcome = fields.String()
    booking_id = fields.UUID(allow_none=True)
    booking_version = fields.Integer(allow_none=True)
    body = fields.String(allow_none=True)
