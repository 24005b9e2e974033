"""Staff API of inbound SMS (API key): the replies no keyword understood, kept for staff to read."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from services.notify.replies import schemas as s
from services.notify.replies import service
from shared.api import API_PREFIX
from shared.db import get_session

staff = Blueprint(
    "replies", __name__, url_prefix=API_PREFIX, description="Inbound SMS: patients' replies (staff)"
)


@staff.route("/replies")
class Replies(MethodView):
    @staff.arguments(s.ReplyFilter(), location="query")
    @staff.response(200, s.ReplyOut(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Inbound SMS, newest first: by default those no keyword understood, kept for staff to read."""
        return service.list_replies(session=get_session(), **args)
