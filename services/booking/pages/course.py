"""A patient's treatment course through its signed course link: every session, and cancelling some or all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, abort, g, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, ValidationError, fields, validate

from services.booking import relink
from services.booking import service as bookings
from services.booking.courses import service
from services.booking.models import Booking, Course
from services.booking.pages.common import bp, chosen_zone, config, long_token, visit_zone, wants_problem
from services.booking.pages.i18n import current_language
from shared import links
from shared.db import get_session, unit_of_work
from shared.fields import parse_id
from shared.links import current_signer
from shared.problems import Gone
from shared.timeutil import utcnow


@dataclass(frozen=True)
class SessionRow:
    """One session as the course page lists it."""

    booking: Booking
    index: int
    count: int
    zone: str
    manage_url: str
    can_cancel: bool  # not begun and before its change deadline: "this and the following" may start here

    @property
    def is_booster(self) -> bool:
        return self.index > self.count


class CancelChoice(Schema):
    """The cancel form: ``from`` a session index (this and the following), or nothing (the whole course)."""

    from_index = fields.Integer(data_key="from", load_default=None, validate=validate.Range(min=1, max=60))


def _course(token: str) -> Course:
    try:
        course = service.course_for_link(session=get_session(), signer=current_signer(), token=token)
    except Gone:
        if wants_problem():
            raise
        abort(_expired(token))
    g.patient_language = course.patient.language  # as the manage page: unless this browser chose another
    return course


def _expired(token: str) -> Response:
    """A genuine course link past its life (its last session ended a while ago): say so; offer to book."""
    course = service.course_for_link(
        session=get_session(), signer=current_signer(), token=token, allow_expired=True
    )
    g.patient_language = course.patient.language
    clinic = course.template.clinic
    stopped = course.stopped_at is not None
    page = render_template(
        "pages/expired.html",
        clinic=clinic,
        for_course=True,
        course_stopped=stopped,
        # A course moved or given a booster later than this link knew has a current link that still opens.
        send_link=None
        if stopped
        else url_for("pages.course_send_link", token=token, lang=current_language()),
        book_again=url_for("pages.book_types", clinic_slug=clinic.slug, lang=current_language()),
        tz=clinic.time_zone,
        tz_chosen=False,
    )
    return make_response(page, 410)


@bp.post("/course/<token>/send-link")
def course_send_link(token: str) -> ResponseReturnValue:
    """Send the course's current link to the phone and email on file; the same answer whether or not."""
    with unit_of_work() as session:
        relink.request_course_link(
            session=session, signer=current_signer(), token=token, per_hour=config().link_resend_per_hour
        )
    return redirect(url_for("pages.course_link_sent", token=token, lang=request.args.get("lang")), code=303)


@bp.get("/course/<token>/link-sent")
def course_link_sent(token: str) -> ResponseReturnValue:
    """The one answer to "send my course link again", as the manage link's."""
    course = service.course_for_link(
        session=get_session(), signer=current_signer(), token=token, allow_expired=True
    )
    clinic = course.template.clinic
    return render_template("pages/link_sent.html", clinic=clinic, tz=clinic.time_zone, tz_chosen=False)


def _rows(course: Course) -> list[SessionRow]:
    now = utcnow()
    tz, _ = chosen_zone(course.patient.time_zone)
    count = course.template.sessions
    return [
        SessionRow(
            booking=b,
            index=b.course_index or 0,
            count=count,
            zone=visit_zone(b.appointment_type, course.template.clinic, tz),
            manage_url=url_for("pages.manage_booking", token=bookings.manage_token(current_signer(), b)),
            can_cancel=b.status == bookings.CONFIRMED and now < bookings.change_deadline(b),
        )
        for b in course.sessions
    ]


def _context(course: Course, token: str) -> dict[str, Any]:
    tz, chosen = chosen_zone(course.patient.time_zone)
    rows = _rows(course)
    now = utcnow()
    ahead = [r for r in rows if r.booking.status == bookings.CONFIRMED and r.booking.start_at > now]
    return {
        "course": course,
        "token": token,
        "clinic": course.template.clinic,
        "status": service.status_of(course),
        "rows": rows,
        # The whole course can go online only while every session not yet begun is before its deadline.
        "can_cancel_all": bool(ahead) and all(r.can_cancel for r in ahead),
        "course_url": links.course_url(config().booking_public_url, token),
        "now": now,
        "tz": tz,
        "tz_chosen": chosen,
    }


@bp.get("/course/<token>")
def course_page(token: str) -> ResponseReturnValue:
    """The course: every session with its time, status and own manage link, and what can be cancelled."""
    course = _course(token)
    raw = request.args.get("cancelled")
    # Only ASCII digits of a session number: ``str.isdigit`` also passes "²", which ``int`` refuses.
    cancelled = None if raw is None else [n for n in map(parse_id, raw.split(",")) if n is not None]
    return render_template(
        "pages/course.html", cancelled=cancelled, done=request.args.get("done"), **_context(course, token)
    )


@bp.get("/c/<code>")
def course_short_link(code: str) -> ResponseReturnValue:
    """An SMS's short course link: to the course page."""
    token = long_token(code, links.COURSE)
    return redirect(url_for("pages.course_page", token=token))


@bp.route("/course/<token>/cancel", methods=["GET", "POST"])
def course_cancel(token: str) -> ResponseReturnValue:
    """Ask which sessions go (GET: ``?from=N`` or the whole course); cancel them (POST) and say which."""
    course = _course(token)
    context = _context(course, token)
    try:
        from_index = CancelChoice().load({"from": request.values.get("from") or None})["from_index"]
    except ValidationError:
        return redirect(url_for("pages.course_page", token=token))
    going = [r for r in context["rows"] if r.can_cancel and (from_index is None or r.index >= from_index)]
    if request.method == "GET":
        if not going or (from_index is None and not context["can_cancel_all"]):
            return redirect(url_for("pages.course_page", token=token))
        return render_template("pages/course_cancel.html", from_index=from_index, going=going, **context)
    with unit_of_work() as session:
        _, cancelled = service.cancel_course(
            session=session, course_id=course.id, from_index=from_index, by="patient", reason=""
        )
        done = ",".join(str(b.course_index) for b in cancelled)
    return redirect(url_for("pages.course_page", token=token, cancelled=done or "none"), code=303)
