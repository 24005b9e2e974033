"""Request and response shapes of the notify staff API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.notify.models import CHANNELS, STATUSES
from shared.fields import INT32_MAX


class MessageOut(Schema):
    """One planned message and where it stands (contact details and texts are left out)."""

    id = fields.Integer()
    booking_id = fields.UUID()
    booking_version = fields.Integer()
    step = fields.String(metadata={"example": "reminder-24h"})
    channel = fields.String(metadata={"example": "sms"})
    protocol = fields.String(metadata={"example": "video-consultation"})
    protocol_version = fields.Integer()
    urgent = fields.Boolean()
    status = fields.String(
        metadata={"description": "planned, queued, sending, sent, skipped, cancelled or failed"}
    )
    reason = fields.String(metadata={"description": "why it was skipped, cancelled, failed or is waiting"})
    blocked_on = fields.String(allow_none=True, metadata={"description": "`join_link` while waiting for it"})
    due_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime()
    attempts = fields.Integer()
    sent_at = fields.AwareDateTime(allow_none=True)
    provider_ref = fields.String(
        allow_none=True, metadata={"description": "Twilio Message SID or Message-ID"}
    )
    delivery_status = fields.String(
        allow_none=True,
        metadata={"description": "from the provider: queued, sent, delivered, undelivered, failed"},
    )
    delivery_updated_at = fields.AwareDateTime(allow_none=True)
    error_code = fields.String(allow_none=True, metadata={"example": "21211"})
    sequence = fields.Integer(
        allow_none=True, metadata={"description": "a provider invite's SEQUENCE (RFC 5545), once claimed"}
    )
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class BookingMessagesOut(Schema):
    """A booking as notify knows it, with every message planned for it."""

    booking_id = fields.UUID()
    version = fields.Integer(metadata={"description": "the newest booking version notify has seen"})
    status = fields.String()
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    protocol = fields.String()
    messages = fields.List(fields.Nested(MessageOut))


class MessageFilter(Schema):
    """Filters of the message list."""

    status = fields.String(validate=validate.OneOf(STATUSES))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=INT32_MAX))


class MessagePage(Schema):
    """A page of messages."""

    total = fields.Integer()
    items = fields.List(fields.Nested(MessageOut))
