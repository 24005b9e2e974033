"""Booking a whole treatment course from a clinic's public link or an invitation: the proposed schedule, one
session swapped for an offered alternative, the patient's details once, and one request for every session."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from flask import g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from services.booking.courses import service
from services.booking.courses.planner import Candidate
from services.booking.models import CourseTemplate
from services.booking.pages import forms
from services.booking.pages.book import SLOT_TAKEN, entry_of
from services.booking.pages.common import Entry, bp, chosen_zone
from services.booking.pages.i18n import N_, current_language
from shared.db import get_session, unit_of_work
from shared.links import current_signer
from shared.problems import Conflict, NotFound, Unprocessable

# The schedule travels in the page's links and form as ``s=<start>@<provider id>``, one per session.
SCHEDULE = "s"
DETAILS = forms.DetailsForm(exclude=("start", "provider_id"))
PATIENT_FIELDS = ("name", "email", "phone", "time_zone", "sms_consent")


def _template(entry: Entry, template_slug: str) -> CourseTemplate:
    """The clinic's active template ``template_slug``, if this entry offers its session type."""
    for template in service.list_templates(session=get_session(), clinic_id=entry.clinic.id):
        offered = entry.offered_types(among=[template.session_type])
        if template.slug == template_slug and template.active and template.session_type in offered:
            return template
    raise NotFound(N_("This course is not offered here."))


def _schedule(raw: list[str]) -> list[Candidate] | None:
    """The schedule in the request, or None if it has none or is malformed."""
    sessions = []
    for item in raw:
        start, _, provider = item.partition("@")
        try:
            loaded = forms.SlotChoice().load({"start": start, "provider_id": provider})
        except ValidationError:
            return None
        sessions.append(Candidate(loaded["start"], loaded["provider_id"]))
    return sessions or None


def _plan(
    entry: Entry, template: CourseTemplate, wanted: list[Candidate] | None
) -> tuple[service.Plan, bool]:
    """The patient's adjusted schedule if it keeps every rule, else the earliest plan (and whether it was)."""
    session = get_session()
    if wanted is not None and all(entry.provider_id in (None, c.provider_id) for c in wanted):
        try:
            return service.replan(session=session, template_id=template.id, sessions=wanted), True
        except Unprocessable:
            pass  # a hand-made or stale schedule: start again from the earliest plan
    plan = service.plan_course(session=session, template_id=template.id, provider_id=entry.provider_id)
    return plan, False


def _encode(sessions: list[Candidate]) -> list[str]:
    return [f"{c.start.isoformat()}@{c.provider_id}" for c in sessions]


def _page(
    entry: Entry,
    template: CourseTemplate,
    plan: service.Plan,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    tz, chosen = chosen_zone(entry.clinic.time_zone)
    here = _url(entry, template)
    schedule = _encode(plan.sessions)

    def swap_url(index: int, alternative: Candidate) -> str:
        swapped = [*schedule[:index], *_encode([alternative]), *schedule[index + 1 :]]
        return f"{here}?{urlencode([('tz', tz), *((SCHEDULE, s) for s in swapped)])}#session-{index + 1}"

    providers = {p.id: p for p in template.session_type.providers}
    return (
        render_template(
            "pages/course_book.html",
            entry=entry,
            clinic=entry.clinic,
            template=template,
            kind=template.session_type,
            rows=list(zip(plan.sessions, plan.alternatives, strict=True)),
            providers=providers,
            schedule=schedule,
            swap_url=swap_url,
            action=f"{here}?{urlencode({'tz': tz})}",
            values=values,
            errors=errors or {},
            notice=notice,
            tz=tz,
            tz_chosen=chosen,
        ),
        status,
    )


def _url(entry: Entry, template: CourseTemplate) -> str:
    if entry.token:
        return url_for("pages.invite_course", token=entry.token, template_slug=template.slug)
    return url_for("pages.book_course", clinic_slug=entry.clinic.slug, template_slug=template.slug)


def course_step(
    template_slug: str, clinic_slug: str | None = None, token: str | None = None
) -> ResponseReturnValue:
    """The proposed schedule with alternatives per session and the details form (GET); book it all (POST)."""
    # As for one booking: a repeated submission of a spent invitation must still find its course.
    entry = entry_of(clinic_slug, token, usable=request.method == "GET")
    template = _template(entry, template_slug)
    tz, _ = chosen_zone(entry.clinic.time_zone)
    plan, kept = _plan(entry, template, _schedule(request.values.getlist(SCHEDULE)))
    if request.method == "GET":
        values = {"time_zone": tz, "idempotency_key": secrets.token_urlsafe(16)}
        if entry.invitation is not None and entry.invitation.prefill:
            values |= {k: v for k, v in entry.invitation.prefill.items() if v}
        return _page(entry, template, plan, values=values)
    return _submit(entry, template, plan, kept=kept, tz=tz)


STALE = N_("For your security this form had expired. Your answers are kept: check them and book again.")
MOVED = N_("Some of these times are no longer free. Here is a new schedule: check it and book again.")
TAKEN = N_(
    "Someone booked one of these times a moment before you. Here is a new schedule: check it and book again."
)


def _submit(
    entry: Entry, template: CourseTemplate, plan: service.Plan, *, kept: bool, tz: str
) -> ResponseReturnValue:
    """Check the details and book every session; a problem re-renders the page with the answers kept."""
    values = forms.form_values(request.form) | {"time_zone": tz}
    if g.get("stale_form") or not kept:  # not kept: the posted schedule no longer holds, show the new one
        values["idempotency_key"] = secrets.token_urlsafe(16)
        notice, status = (STALE, 400) if g.get("stale_form") else (MOVED, 409)
        return _page(entry, template, plan, values=values, notice=notice, status=status)
    try:
        details = DETAILS.load(values)
    except ValidationError as exc:
        errors = forms.flat_errors(exc.messages_dict)
        return _page(entry, template, plan, values=values, errors=errors, status=422)
    try:
        token = _book(entry, template, plan, details)
    except Conflict as exc:
        if exc.slug not in SLOT_TAKEN:
            raise
        fresh, _ = _plan(entry, template, None)
        values["idempotency_key"] = secrets.token_urlsafe(16)
        return _page(entry, template, fresh, values=values, notice=TAKEN, status=409)
    return redirect(url_for("pages.course_page", token=token, done="booked"), code=303)


def _book(entry: Entry, template: CourseTemplate, plan: service.Plan, details: dict[str, Any]) -> str:
    """Book every session of ``plan`` in one transaction and return the course page's token."""
    key = details.get("idempotency_key")
    with unit_of_work() as session:
        course, _ = service.book_course(
            session=session,
            template_id=template.id,
            sessions=[{"start": c.start, "provider_id": c.provider_id} for c in plan.sessions],
            patient={k: details[k] for k in PATIENT_FIELDS} | {"language": current_language()},
            idempotency_key=f"page-course-{key}" if key else None,
            invitation_id=entry.invitation.id if entry.invitation is not None else None,
        )
        return service.course_token(current_signer(), course)


for _prefix, _name in (("/book/<clinic_slug>", "book_course"), ("/invite/<token>", "invite_course")):
    bp.add_url_rule(f"{_prefix}/course/<template_slug>", _name, course_step, methods=("GET", "POST"))
