"""Staff API for treatment courses: templates, plans, booking a whole course, changing and stopping it.

Views are thin: a schema loads the request, one courses operation works, a schema dumps it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.exc import OperationalError

from services.booking import service as bookings
from services.booking.courses import schemas as c
from services.booking.courses import service
from services.booking.courses.planner import ALL_DAY, Preferences, merged
from services.booking.models import Booking, Course
from services.booking.views import idempotency_key, request_fingerprint
from shared.api import API_PREFIX, ProblemSchema, links
from shared.db import get_session, is_transient, unit_of_work
from shared.links import course_url, current_signer, manage_url
from shared.problems import Conflict, Problem
from shared.timeutil import to_zone

blueprint = Blueprint(
    "courses", __name__, url_prefix=API_PREFIX, description="Treatment courses of several sessions (staff)"
)
_TEMPLATE, _COURSE = f"{API_PREFIX}/course-templates/{{template_id}}", f"{API_PREFIX}/courses/{{course_id}}"
TEMPLATE_LINKS = {
    "GetCourseTemplate": ("get", _TEMPLATE, "template_id"),
    "ChangeCourseTemplate": ("patch", _TEMPLATE, "template_id"),
}
COURSE_LINKS = {
    "GetCourse": ("get", _COURSE, "course_id"),
    "CancelCourse": ("post", f"{_COURSE}/cancel", "course_id"),
}
_KEY_DOC = {
    "in": "header",
    "name": "Idempotency-Key",
    "schema": {"type": "string", "maxLength": 255},
    "description": "Repeat a request with the same key and body to get the same course back",
}


class _Session:
    """A course's session with its current manage link, for dumping."""

    def __init__(self, booking: Booking) -> None:
        self._booking = booking
        public_url = current_app.extensions["suite_config"].booking_public_url
        self.manage_url = manage_url(public_url, bookings.manage_token(current_signer(), booking))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._booking, name)


class _Course:
    """A course with its status and sessions, for dumping."""

    def __init__(self, course: Course) -> None:
        self._course = course
        self.status = service.status_of(course)
        self.sessions = [_Session(b) for b in course.sessions]
        public_url = current_app.extensions["suite_config"].booking_public_url
        self.course_url = course_url(public_url, service.course_token(current_signer(), course))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._course, name)


def _plan_body(plan: service.Plan, tz: str | None) -> dict[str, Any]:
    zone = tz or plan.template.clinic.time_zone
    length = timedelta(minutes=plan.template.session_type.duration_minutes)
    return {
        "template_id": plan.template.id,
        "time_zone": zone,
        "sessions": [
            {
                "index": n,
                "start": to_zone(chosen.start, zone).isoformat(),
                "end": to_zone(chosen.start + length, zone).isoformat(),
                "provider_id": chosen.provider_id,
                "alternatives": [
                    {"start": to_zone(a.start, zone).isoformat(), "provider_id": a.provider_id}
                    for a in others
                ],
            }
            for n, (chosen, others) in enumerate(zip(plan.sessions, plan.alternatives, strict=True), start=1)
        ],
    }


# --- templates -----------------------------------------------------------------------------------------


@blueprint.route("/course-templates")
class Templates(MethodView):
    @blueprint.arguments(c.TemplateFilter(), location="query")
    @blueprint.response(200, c.CourseTemplateOut(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List course templates."""
        return service.list_templates(session=get_session(), clinic_id=args.get("clinic_id"))

    @blueprint.arguments(c.CourseTemplateIn())
    @blueprint.response(201, c.CourseTemplateOut)
    @blueprint.alt_response(409, schema=ProblemSchema, description="Slug taken in this clinic")
    @links(blueprint, 201, TEMPLATE_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a course template: session type, count, spacing, window, provider rule, booster."""
        clinic_id = data.pop("clinic_id")
        with unit_of_work() as session:
            return service.create_template(session=session, clinic_id=clinic_id, fields=data)


@blueprint.route("/course-templates/<id:template_id>")
class TemplateItem(MethodView):
    @blueprint.response(200, c.CourseTemplateOut)
    def get(self, template_id: int) -> Any:
        """Read a course template."""
        return service.get_template(session=get_session(), template_id=template_id)

    @blueprint.arguments(c.CourseTemplatePatch())
    @blueprint.response(200, c.CourseTemplateOut)
    def patch(self, data: dict[str, Any], template_id: int) -> Any:
        """Change a course template (courses already booked keep their sessions)."""
        with unit_of_work() as session:
            return service.update_template(session=session, template_id=template_id, changes=data)


# --- plans and courses ---------------------------------------------------------------------------------


def _prefs(data: dict[str, Any]) -> Preferences:
    defaults = Preferences()
    if data.get("times"):
        windows = [(w["earliest"], w["latest"]) for w in data["times"]]
    else:  # one window from the single pair (what callers before ``times`` send)
        windows = [(data.get("earliest") or ALL_DAY[0], data.get("latest") or ALL_DAY[1])]
    return Preferences(
        weekdays=frozenset(data["weekdays"]) if data.get("weekdays") else defaults.weekdays,
        windows=merged(windows),
    )


@blueprint.route("/courses/plan")
class Plan(MethodView):
    @blueprint.arguments(c.PlanIn())
    @blueprint.response(200, c.PlanOut)
    @blueprint.alt_response(422, schema=ProblemSchema, description="No plan: blocked_by names the rule")
    def post(self, data: dict[str, Any]) -> Any:
        """Propose the earliest full schedule, with alternatives for each session (books nothing)."""
        plan = service.plan_course(
            session=get_session(),
            template_id=data["template_id"],
            first_start=data.get("start"),
            provider_id=data.get("provider_id"),
            prefs=_prefs(data),
        )
        return _plan_body(plan, data.get("tz"))


def _fresh_plan(data: dict[str, Any]) -> dict[str, Any] | None:
    """A new plan from the requested first start on, for a 409 (None if none can be made)."""
    try:
        plan = service.plan_course(
            session=get_session(),
            template_id=data["template_id"],
            not_before=data["sessions"][0]["start"],
        )
    except Problem:
        return None
    return _plan_body(plan, None)


@blueprint.route("/courses")
class Courses(MethodView):
    @blueprint.arguments(c.CourseIn())
    @blueprint.response(201, c.CourseOut)
    @blueprint.alt_response(409, schema=ProblemSchema, description="A time was taken: a fresh plan is given")
    @blueprint.doc(parameters=[_KEY_DOC])
    @links(blueprint, 201, COURSE_LINKS)
    def post(self, data: dict[str, Any]) -> Any:
        """Book every session of a course at once, or none. A repeated Idempotency-Key returns its course."""
        key = idempotency_key()
        try:
            with unit_of_work() as session:
                course, created = service.book_course(
                    session=session,
                    idempotency_key=key,
                    request_hash=request_fingerprint(data) if key else None,
                    **data,
                )
                presented = _Course(course)
        except Conflict as exc:
            raise Conflict(exc.detail, slug=exc.slug, extra={**exc.extra, "plan": _fresh_plan(data)}) from exc
        except OperationalError as exc:
            # Two courses claiming each other's times in opposite order: the database picks a loser.
            if not is_transient(exc):
                raise
            raise Conflict(
                "Another booking took one of these times.",
                slug="slot-unavailable",
                extra={"plan": _fresh_plan(data)},
            ) from exc
        return presented, 201, {} if created else {"Idempotent-Replayed": "true"}


@blueprint.route("/courses/<uuid:course_id>")
class CourseItem(MethodView):
    @blueprint.response(200, c.CourseOut)
    def get(self, course_id: uuid.UUID) -> Any:
        """Read a course: its status and every session."""
        return _Course(service.get_course(session=get_session(), course_id=course_id))


@blueprint.route("/courses/<uuid:course_id>/cancel")
class CourseCancel(MethodView):
    @blueprint.arguments(c.CourseCancelIn(), required=False)
    @blueprint.response(200, c.CourseOut)
    def post(self, data: dict[str, Any], course_id: uuid.UUID) -> Any:
        """Cancel every session not yet begun, or ``from_index`` and the following; the course stops early."""
        with unit_of_work() as session:
            course, _ = service.cancel_course(
                session=session,
                course_id=course_id,
                from_index=data.get("from_index"),
                by="staff",
                reason=data.get("reason", ""),
            )
            return _Course(course)


@blueprint.route("/courses/<uuid:course_id>/sessions/<id:index>/reschedule")
class SessionReschedule(MethodView):
    @blueprint.arguments(c.SessionRescheduleIn())
    @blueprint.response(200, c.CourseOut)
    @blueprint.alt_response(409, schema=ProblemSchema, description="A new time is taken")
    def post(self, data: dict[str, Any], course_id: uuid.UUID, index: int) -> Any:
        """Move one session, or it and the following; the template's rules still hold or 422 names one."""
        with unit_of_work() as session:
            course, _ = service.reschedule_sessions(
                session=session, course_id=course_id, index=index, by="staff", **data
            )
            return _Course(course)


@blueprint.route("/courses/<uuid:course_id>/boosters")
class Boosters(MethodView):
    @blueprint.arguments(c.BoosterIn())
    @blueprint.response(201, c.CourseOut)
    @blueprint.alt_response(409, schema=ProblemSchema, description="Time taken, stopped course or no booster")
    def post(self, data: dict[str, Any], course_id: uuid.UUID) -> Any:
        """Book a booster session after the course (the template's booster type, the next index)."""
        with unit_of_work() as session:
            course, _ = service.add_booster(session=session, course_id=course_id, **data)
            return _Course(course)
