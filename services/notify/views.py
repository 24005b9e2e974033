"""Staff API of the notify service (API key): a booking's messages and their delivery status."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from services.notify import schemas as s
from services.notify import service
from shared.api import API_PREFIX, ProblemSchema
from shared.db import get_session

messages = Blueprint(
    "messages", __name__, url_prefix=API_PREFIX, description="Messages planned and sent (staff)"
)


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
