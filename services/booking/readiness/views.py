"""Readiness API (staff): a day's sessions with attendance and flags, and signed day-sheet links."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from services.booking.readiness import schemas as s
from services.booking.readiness import service
from services.booking.runtime import get_runtime
from shared.api import API_PREFIX, ProblemSchema
from shared.db import get_session

blueprint = Blueprint(
    "readiness", __name__, url_prefix=f"{API_PREFIX}/readiness", description="Who is ready, by day (staff)"
)


@blueprint.route("")
class Readiness(MethodView):
    @blueprint.arguments(s.ReadinessFilter(), location="query")
    @blueprint.response(200, s.ReadinessOut(many=True))
    @blueprint.alt_response(404, schema=ProblemSchema, description="No such clinic")
    def get(self, args: dict[str, Any]) -> Any:
        """A day's sessions (the clinic's zone) with attendance, chair and checklist flag, newest first."""
        return service.readiness(session=get_session(), checklists=get_runtime().checklists, **args)


@blueprint.route("/links")
class DaySheetLinks(MethodView):
    @blueprint.arguments(s.DaySheetLinkIn())
    @blueprint.response(201, s.DaySheetLinkOut)
    @blueprint.alt_response(404, schema=ProblemSchema, description="No such clinic")
    def post(self, data: dict[str, Any]) -> Any:
        """A signed link to a day's sheet (a page: who is ready), for staff without the API key."""
        runtime = get_runtime()
        return service.day_sheet_link(
            session=get_session(),
            signer=runtime.signer,
            base_url=runtime.config.booking_public_url,
            **data,
        )
