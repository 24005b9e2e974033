"""Booking a whole treatment course from a clinic's public link or an invitation: the days and times the
patient can come, the proposed schedule, one session swapped for an offered alternative, the patient's
details once, and one request for every session."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from babel.dates import get_day_names
from flask import g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, gettext
from marshmallow import ValidationError

from services.booking.courses import service
from services.booking.courses.planner import Candidate, Preferences, merged
from services.booking.models import CourseTemplate
from services.booking.pages import forms
from services.booking.pages.book import SLOT_TAKEN, entry_of
from services.booking.pages.common import Entry, bp, chosen_zone
from services.booking.pages.i18n import N_, current_language
from shared.db import get_session, unit_of_work
from shared.links import current_signer
from shared.problems import Conflict, NotFound, Unprocessable
from shared.timeutil import local_date, local_to_utc, utcnow

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


@dataclass(frozen=True)
class Wishes:
    """When the patient can come, from the page's form: for the planner, the form and the page's links."""

    prefs: Preferences = field(default_factory=Preferences)
    not_before: datetime | None = None
    values: dict[str, Any] = field(
        default_factory=lambda: {"day": [str(d) for d in range(7)], "time": list(forms.PARTS_OF_DAY)}
    )
    query: tuple[tuple[str, str], ...] = ()

    @property
    def narrowed(self) -> bool:
        """Whether the patient narrowed the days, the time of day or the first day."""
        return self.prefs != Preferences() or self.not_before is not None


def _wishes(tz: str, horizon_days: int) -> tuple[Wishes, dict[str, str]]:
    """The preferences in the query and the form's errors; none given (not the form, nor a link it made): any
    time."""
    args = request.args
    # The form sends its date field (empty or not) and the days ticked; its links always carry a time of day.
    if not any(name in args for name in ("time", "day", "from")):
        return Wishes(), {}
    raw: dict[str, Any] = {"day": args.getlist("day"), "time": [t.strip() for t in args.getlist("time")]}
    if args.get("from", "").strip():
        raw["from"] = args["from"].strip()
    # A link from the single-choice page's "any" ticks every part of the day.
    shown = list(forms.PARTS_OF_DAY) if "any" in raw["time"] else raw["time"]
    values = {"day": raw["day"], "time": shown, "from": raw.get("from", "")}
    try:
        loaded = forms.CourseWishesForm().load(raw)
    except ValidationError as exc:
        return Wishes(values=values), forms.flat_errors(exc.messages_dict)
    first, today = loaded["start_from"], local_date(utcnow(), tz)
    if first is not None and not today <= first <= today + timedelta(days=horizon_days):
        message = gettext("choose a day from today to %(days)s days ahead", days=horizon_days)
        return Wishes(values=values), {"from": message}
    parts = sorted(set(loaded["time"]), key=list(forms.TIMES_OF_DAY).index)
    days = sorted(set(loaded["day"]))
    query = (*(("day", str(d)) for d in days), *(("time", t) for t in parts))
    if first is not None:
        query = (*query, ("from", first.isoformat()))
    return Wishes(
        prefs=Preferences(weekdays=frozenset(days), windows=merged([forms.TIMES_OF_DAY[t] for t in parts])),
        not_before=local_to_utc(first, time(0), tz) if first is not None and first > today else None,
        values=values,
        query=query,
    ), {}


@dataclass(frozen=True)
class Proposal:
    """The schedule to show (None if no full one fits), whether it is the one asked for, and why not."""

    plan: service.Plan | None
    kept: bool = False
    blocked: dict[str, Any] | None = None  # the planner's ``blocked_by``: rule and session


def _plan(entry: Entry, template: CourseTemplate, wanted: list[Candidate] | None, wishes: Wishes) -> Proposal:
    """The patient's adjusted schedule if it keeps every rule, else the earliest plan their wishes allow."""
    session = get_session()
    if wanted is not None and all(entry.provider_id in (None, c.provider_id) for c in wanted):
        try:
            plan = service.replan(
                session=session, template_id=template.id, sessions=wanted, prefs=wishes.prefs
            )
            return Proposal(plan, kept=True)
        except Unprocessable:
            pass  # a hand-made or stale schedule: start again from the earliest plan
    try:
        plan = service.plan_course(
            session=session,
            template_id=template.id,
            provider_id=entry.provider_id,
            prefs=wishes.prefs,
            not_before=wishes.not_before,
        )
    except Unprocessable as exc:
        if exc.slug != "course-unplannable":
            raise
        return Proposal(None, blocked=dict(exc.extra["blocked_by"]))
    return Proposal(plan)


# Why no full schedule fits, by the planner's rule (docs/courses.md), in the patient's language.
BLOCKED = {
    "within_days": N_("Session %(index)s cannot be held within the course's %(days)s days."),
    "max_per_week": N_(
        "Session %(index)s finds no week with room for it: this course allows %(per_week)s a week at most."
    ),
    "min_hours_between": N_("Session %(index)s cannot start %(hours)s hours or more after the one before."),
    "availability": N_(
        "No provider and chair are free for session %(index)s before bookings close, %(horizon)s days ahead."
    ),
}
BLOCKED_OTHER = N_("Session %(index)s cannot be fitted into this course's schedule.")
TRY_WISHES = N_("Try more days of the week, another time of day, or a later first day.")
TRY_TIMES = N_("Try more days of the week or another time of day.")
TRY_LATER = N_("Try a later first day, or contact the clinic.")
TRY_AGAIN = N_("New times open every day: try again in a few days, or contact the clinic.")


def blocked_message(template: CourseTemplate, blocked: dict[str, Any], *, narrowed: bool) -> list[str]:
    """Which rule stops the course and what to try, in the page's language."""
    rule = blocked.get("rule")
    sentence = gettext(
        BLOCKED.get(str(rule), BLOCKED_OTHER),
        index=blocked.get("session", 1),
        days=template.within_days,
        per_week=template.max_per_week,
        hours=template.min_hours_between,
        horizon=template.session_type.horizon_days,
    )
    if rule == "availability":
        return [sentence, gettext(TRY_TIMES if narrowed else TRY_AGAIN)]
    return [sentence, gettext(TRY_WISHES if narrowed else TRY_LATER)]


def _weekdays() -> list[tuple[int, str]]:
    """(0 = Monday, its name) for the seven days, in the page's language."""
    names = get_day_names("wide", "stand-alone", locale=get_locale())
    return [(n, names[n][:1].upper() + names[n][1:]) for n in range(7)]


def _encode(sessions: list[Candidate]) -> list[str]:
    return [f"{c.start.isoformat()}@{c.provider_id}" for c in sessions]


def _page(
    entry: Entry,
    template: CourseTemplate,
    proposal: Proposal,
    wishes: Wishes,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    tz, chosen = chosen_zone(entry.clinic.time_zone)
    here = _url(entry, template)
    plan = proposal.plan
    schedule = _encode(plan.sessions) if plan is not None else []

    def swap_url(index: int, alternative: Candidate) -> str:
        swapped = [*schedule[:index], *_encode([alternative]), *schedule[index + 1 :]]
        query = [("tz", tz), *wishes.query, *((SCHEDULE, s) for s in swapped)]
        return f"{here}?{urlencode(query)}#session-{index + 1}"

    blocked = None
    if proposal.blocked is not None:
        blocked = blocked_message(template, proposal.blocked, narrowed=wishes.narrowed)
        status = 422 if status == 200 else status
    providers = {p.id: p for p in template.session_type.providers}
    return (
        render_template(
            "pages/course_book.html",
            entry=entry,
            clinic=entry.clinic,
            template=template,
            kind=template.session_type,
            rows=list(zip(plan.sessions, plan.alternatives, strict=True)) if plan is not None else [],
            providers=providers,
            schedule=schedule,
            swap_url=swap_url,
            here=here,
            action=f"{here}?{urlencode([('tz', tz), *wishes.query])}",
            values=values,
            wishes=wishes,
            weekdays=_weekdays(),
            times=forms.PARTS_OF_DAY,
            blocked=blocked,
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
    """When the patient can come, the proposed schedule with alternatives, the details (GET); book (POST)."""
    # As for one booking: a repeated submission of a spent invitation must still find its course.
    entry = entry_of(clinic_slug, token, usable=request.method == "GET")
    template = _template(entry, template_slug)
    tz, _ = chosen_zone(entry.clinic.time_zone)
    wishes, wish_errors = _wishes(entry.clinic.time_zone, template.session_type.horizon_days)
    proposal = _plan(entry, template, _schedule(request.values.getlist(SCHEDULE)), wishes)
    if request.method == "GET":
        values = {"time_zone": tz, "idempotency_key": secrets.token_urlsafe(16)}
        if entry.invitation is not None and entry.invitation.prefill:
            values |= {k: v for k, v in entry.invitation.prefill.items() if v}
        status = 422 if wish_errors else 200
        return _page(entry, template, proposal, wishes, values=values, errors=wish_errors, status=status)
    return _submit(entry, template, proposal, wishes, tz=tz, wish_errors=wish_errors)


STALE = N_("For your security this form had expired. Your answers are kept: check them and book again.")
MOVED = N_("Some of these times are no longer free. Here is a new schedule: check it and book again.")
TAKEN = N_(
    "Someone booked one of these times a moment before you. Here is a new schedule: check it and book again."
)


def _submit(
    entry: Entry,
    template: CourseTemplate,
    proposal: Proposal,
    wishes: Wishes,
    *,
    tz: str,
    wish_errors: dict[str, str],
) -> ResponseReturnValue:
    """Check the days and times, the details, and book every session; a problem re-renders the page with the
    answers kept."""
    values = forms.form_values(request.form) | {"time_zone": tz}
    page: dict[str, Any] = {"entry": entry, "template": template, "wishes": wishes, "values": values}
    # Not kept: the posted schedule no longer holds, show the new one.
    if g.get("stale_form") or not proposal.kept or proposal.plan is None:
        values["idempotency_key"] = secrets.token_urlsafe(16)
        notice, status = (STALE, 400) if g.get("stale_form") else (MOVED, 409)
        return _page(proposal=proposal, notice=notice, status=status, **page)
    # The days and times ride in the form's address: bad ones are named, as on the GET, and nothing is booked.
    if wish_errors:
        return _page(proposal=proposal, errors=wish_errors, status=422, **page)
    try:
        details = DETAILS.load(values)
    except ValidationError as exc:
        errors = forms.flat_errors(exc.messages_dict)
        return _page(proposal=proposal, errors=errors, status=422, **page)
    try:
        token = _book(entry, template, proposal.plan, details)
    except Conflict as exc:
        if exc.slug not in SLOT_TAKEN:
            raise
        fresh = _plan(entry, template, None, wishes)
        values["idempotency_key"] = secrets.token_urlsafe(16)
        return _page(proposal=fresh, notice=TAKEN, status=409, **page)
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
