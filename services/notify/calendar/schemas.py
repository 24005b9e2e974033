"""Response shapes of the calendar's staff API."""

from __future__ import annotations

from marshmallow import Schema, fields


class FeedLinkOut(Schema):
    """A provider's private calendar feed link (a secret: give it to the provider only)."""

    provider_id = fields.Integer()
    url = fields.String(metadata={"description": "https URL of the feed (`/calendar/<token>.ics`)"})
    webcal_url = fields.String(metadata={"description": "the same as `webcal://`, to subscribe in one click"})
    expires_at = fields.AwareDateTime(
        metadata={
            "description": "when this link stops working; fetch a new one before (NOTIFY_FEED_LINK_DAYS)"
        }
    )
    token_version = fields.Integer(metadata={"description": "raised by each rotation"})
    rotated_at = fields.AwareDateTime(allow_none=True)
