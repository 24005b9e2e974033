"""The day-before safety check: a patient answers the visit's checklist through the link in the reminder."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, ValidationError, fields, validate

from services.booking.models import DayCheck
from services.booking.pages import forms
from services.booking.pages.common import bp
from services.booking.pages.i18n import N_, current_language
from services.booking.pages.manage import book_again_url
from services.booking.readiness import service
from services.booking.readiness.checklists import Checklist
from services.booking.runtime import get_runtime
from shared.db import get_session, unit_of_work
from shared.problems import Conflict

YES, NO = "yes", "no"
CHOOSE = N_("Choose yes or no.")


def _open(code: str) -> service.DayCheckLink:
    runtime = get_runtime()
    link = service.open_day_check(
        session=get_session(), keys=runtime.signer.keys, code=code, checklists=runtime.checklists
    )
    g.patient_language = link.booking.patient.language
    return link


def _form(checklist: Checklist) -> Schema:
    answer = validate.OneOf((YES, NO), error=CHOOSE)
    shape: dict[str, fields.Field[Any]] = {
        item.key: fields.String(required=True, validate=answer) for item in checklist.items
    }
    return Schema.from_dict(shape, name="DayCheckForm")()


def _superseded(link: service.DayCheckLink) -> ResponseReturnValue:
    # The visit moved or was cancelled since this link was sent: say which, nothing more.
    booking = link.booking
    page = render_template(
        "pages/superseded.html",
        booking=booking,
        clinic=booking.clinic,
        book_again=book_again_url(booking),
        tz=booking.clinic.time_zone,
        tz_chosen=False,
    )
    return page, 409


def _page(
    code: str,
    link: service.DayCheckLink,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> ResponseReturnValue:
    booking = link.booking
    row = get_session().get(DayCheck, booking.id)
    language = current_language()
    context = {
        "code": code,
        "booking": booking,
        "clinic": booking.clinic,
        "kind": booking.appointment_type,
        "provider": booking.provider,
        "items": [(item.key, item.question(language)) for item in link.checklist.items],
        "values": values,
        "errors": errors,
        "flag": service.check_flag(booking, row, link.checklist) if not errors else None,
        "tz": booking.clinic.time_zone,
        "tz_chosen": False,
    }
    return render_template("pages/day_check.html", **context), status


@bp.get("/d/<code>")
def day_check(code: str) -> ResponseReturnValue:
    """The checklist of one visit, with the patient's answers and where they stand, if already given."""
    link = _open(code)
    if not link.current:
        return _superseded(link)
    row = get_session().get(DayCheck, link.booking.id)
    answers = service.answers_of(link.booking, row)
    values = {key: YES if value else NO for key, value in answers.items()}
    return _page(code, link, values=values, errors={})


@bp.post("/d/<code>")
def day_check_answer(code: str) -> ResponseReturnValue:
    """Record the answers (the same again changes nothing), then show the outcome."""
    link = _open(code)
    if not link.current:
        return _superseded(link)
    values = {item.key: request.form.get(item.key, "") for item in link.checklist.items}
    try:
        form = _form(link.checklist).load(values)
    except ValidationError as exc:
        errors = forms.flat_errors(exc.normalized_messages())
        return _page(code, link, values=values, errors=errors, status=422)
    try:
        with unit_of_work() as session:
            service.answer_day_check(
                session=session, link=link, answers={key: value == YES for key, value in form.items()}
            )
    except Conflict as exc:
        if exc.slug != "link-outdated":
            raise
        return _superseded(_open(code))
    return redirect(url_for("pages.day_check", code=code), code=303)
