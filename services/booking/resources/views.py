"""Staff API for a clinic's resources (chairs, rooms); moving a booking between them is in views.py.

Views are thin: a schema loads the request, one resources operation works, a schema dumps it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from services.booking.resources import schemas as r
from services.booking.resources import service
from shared.api import API_PREFIX, ProblemSchema, links
from shared.db import get_session, unit_of_work

blueprint = Blueprint(
    "resources",
    __name__,
    url_prefix=f"{API_PREFIX}/resources",
    description="Chairs and rooms a visit holds beside its provider (staff)",
)
_RESOURCE = f"{API_PREFIX}/resources/{{resource_id}}"
RESOURCE_LINKS = {
    "GetResource": ("get", _RESOURCE, "resource_id"),
    "ChangeResource": ("patch", _RESOURCE, "resource_id"),
    "CloseResource": ("put", f"{_RESOURCE}/closures/{{day}}", "resource_id"),
}


def _weekly(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("hours") is not None:
        data["hours"] = [(h["weekday"], h["start"], h["end"]) for h in data["hours"]]
    return data


@blueprint.route("")
class Resources(MethodView):
    @blueprint.arguments(r.ResourceFilter(), location="query")
    @blueprint.response(200, r.ResourceOut(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List resources, optionally of one clinic and kind."""
        return service.list_resources(session=get_session(), **args)

    @blueprint.arguments(r.ResourceIn())
    @blueprint.response(201, r.ResourceOut)
    @blueprint.alt_response(409, schema=ProblemSchema, description="Name taken in this clinic")
    @links(blueprint, 201, RESOURCE_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a resource with its weekly hours (in the clinic's zone)."""
        with unit_of_work() as session:
            return service.create_resource(session=session, **_weekly(data))


@blueprint.route("/<id:resource_id>")
class ResourceItem(MethodView):
    @blueprint.response(200, r.ResourceOut)
    def get(self, resource_id: int) -> Any:
        """Read a resource."""
        return service.get_resource(session=get_session(), resource_id=resource_id)

    @blueprint.arguments(r.ResourcePatch())
    @blueprint.response(200, r.ResourceOut)
    @blueprint.alt_response(409, schema=ProblemSchema, description="Name taken in this clinic")
    def patch(self, data: dict[str, Any], resource_id: int) -> Any:
        """Change a resource (bookings already holding it stay)."""
        with unit_of_work() as session:
            return service.update_resource(session=session, resource_id=resource_id, changes=_weekly(data))


@blueprint.route("/<id:resource_id>/closures/<isodate:day>")
class Closure(MethodView):
    @blueprint.arguments(r.ClosureIn(), required=False)
    @blueprint.response(200, r.ResourceOut)
    def put(self, data: dict[str, Any], resource_id: int, day: date) -> Any:
        """Close a resource for one date (maintenance); bookings already holding it stay."""
        with unit_of_work() as session:
            closure = service.set_closure(
                session=session, resource_id=resource_id, day=day, reason=data.get("reason", "")
            )
            session.expire_all()
            return service.get_resource(session=session, resource_id=closure.resource_id)

    @blueprint.response(204)
    def delete(self, resource_id: int, day: date) -> None:
        """Open a resource again on a date it was closed."""
        with unit_of_work() as session:
            service.clear_closure(session=session, resource_id=resource_id, day=day)
