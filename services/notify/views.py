"""Staff API of the notify service (API key): a booking's messages and their delivery status."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from services.notify import schemas as s
from services.notify import service
from services.notify.replies import service as reply_service
from shared.api import API_PREFIX, ProblemSchema
from shared.db import get_session, unit_of_work

messages = Blueprint(
    "messages", __name__, url_prefix=API_PREFIX, description="Messages planned and sent (staff)"
)
calendar_feeds = Blueprint(
    "calendar_feeds",
    __name__,
    url_prefix=API_PREFIX,
    description="Providers' private calendar feed links (staff)",
)
replies = Blueprint(
    "replies", __name__, url_prefix=API_PREFIX, description="Inbound SMS: patients' replies (staff)"
)
BLUEPRINTS = (messages, calendar_feeds, replies)


@replies.route("/replies")
class Replies(MethodView):
    @replies.arguments(s.ReplyFilter(), location="query")
    @replies.response(200, s.ReplyOut(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Inbound SMS, newest first: by default those no keyword understood, kept for staff to read."""
        return reply_service.list_replies(session=get_session(), **args)


@messages.route("/bookings/<uuid:booking_id>/messages")
class BookingMessages(MethodView):
    @messages.response(200, s.BookingMessagesOut)
    @messages.alt_response(404, schema=ProblemSchema, description="Notify never heard of this booking")
    def get(self, booking_id: uuid.UUID) -> Any:
        """Every message planned for a booking, with its status and delivery status."""
        return service.booking_messages(session=get_session(), booking_id=booking_id)


@messages.route("/messages")
class Messages(MethodView):
    @messages.arguments(s.MessageFilter(), location="query")
    @messages.response(200, s.MessagePage)
    def get(self, args: dict[str, Any]) -> Any:
        """Messages by status and channel, most recently changed first (e.g. every failed one)."""
        items, total = service.list_messages(session=get_session(), **args)
        return {"items": items, "total": total}


@calendar_feeds.route("/providers/<id:provider_id>/calendar-feed")
class ProviderFeed(MethodView):
    @calendar_feeds.response(200, s.FeedLinkOut)
    def get(self, provider_id: int) -> Any:
        """The provider's calendar feed link: subscribe to it (webcal); valid a year, fetch again to renew."""
        with unit_of_work() as session:  # the first link of a provider gives its feed a token secret
            return service.provider_feed_link(session=session, provider_id=provider_id)


@calendar_feeds.route("/providers/<id:provider_id>/calendar-feed/rotate")
class RotateProviderFeed(MethodView):
    @calendar_feeds.response(200, s.FeedLinkOut)
    def post(self, provider_id: int) -> Any:
        """Revoke every link to the provider's feed at once (e.g. one was shared) and return a new one."""
        with unit_of_work() as session:
            return service.rotate_provider_feed(session=session, provider_id=provider_id)
