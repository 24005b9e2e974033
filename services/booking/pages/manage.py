"""A patient's own booking through its signed manage link: see it, add it to a calendar, move or cancel it,
say who takes them home."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Response, abort, g, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from services.booking import calendar, escorts, relink, sameday, search, service
from services.booking.models import Booking
from services.booking.pages import forms
from services.booking.pages.book import load_escort
from services.booking.pages.common import (
    SlotOption,
    bp,
    build_picker,
    chosen_zone,
    clock,
    config,
    long_token,
    visit_zone,
    wants_problem,
)
from services.booking.pages.i18n import current_language
from shared import ical, links
from shared.db import get_session, unit_of_work
from shared.events import VIDEO
from shared.links import current_signer
from shared.problems import Conflict, Gone
from shared.timeutil import to_zone, utcnow

SLOT_TAKEN = {"slot-unavailable", "daily-limit"}
# The video protocols send the join link this long before the start (notify's join-1h step): a booking made
# closer than this gets its link at once, and the page says so.
JOIN_LINK_LEAD = timedelta(hours=1)


def _booking(token: str) -> Booking:
    try:
        booking = service.booking_for_link(session=get_session(), signer=current_signer(), token=token)
    except Conflict as exc:
        if exc.slug != "link-outdated":
            raise
        abort(_superseded(token))
    except Gone as exc:
        if exc.slug != "link-expired" or wants_problem():
            raise
        abort(_expired(token))
    # The page speaks the patient's language unless this browser chose another with the switch.
    g.patient_language = booking.patient.language
    return booking


def _expired(token: str) -> Response:
    """A genuine link past its life: say so (nothing more) and offer its current link and booking again."""
    booking, _ = service.booking_behind_link(
        session=get_session(), signer=current_signer(), token=token, allow_expired=True
    )
    g.patient_language = booking.patient.language
    clinic = booking.clinic
    page = render_template(
        "pages/expired.html",
        token=token,
        clinic=clinic,
        send_link=url_for("pages.manage_send_link", token=token, lang=current_language()),
        book_again=book_again_url(booking),
        tz=clinic.time_zone,
        tz_chosen=False,
    )
    return make_response(page, 410)


def _superseded(token: str) -> Response:
    """An older version's link: whether the visit moved or was cancelled (nothing more), and the way on."""
    booking, _ = service.booking_behind_link(session=get_session(), signer=current_signer(), token=token)
    page = render_template(
        "pages/superseded.html",
        booking=booking,
        token=token,
        clinic=booking.clinic,
        book_again=book_again_url(booking),
        tz=booking.clinic.time_zone,
        tz_chosen=False,
    )
    return make_response(page, 409)


@bp.post("/manage/<token>/send-link")
def manage_send_link(token: str) -> ResponseReturnValue:
    """Send the booking's current link to the phone and email on file; the same answer whether or not."""
    with unit_of_work() as session:
        relink.request_current_link(
            session=session,
            signer=current_signer(),
            token=token,
            per_hour=config().link_resend_per_hour,
            allow_expired=True,
        )
    # The answer speaks the language the asking page was in (the expired page's form says which).
    return redirect(url_for("pages.manage_link_sent", token=token, lang=request.args.get("lang")), code=303)


@bp.get("/manage/<token>/link-sent")
def manage_link_sent(token: str) -> ResponseReturnValue:
    """The one answer to "send my current link again" (a page of its own, so the language switch works)."""
    booking, _ = service.booking_behind_link(
        session=get_session(), signer=current_signer(), token=token, allow_expired=True
    )
    clinic = booking.clinic
    return render_template("pages/link_sent.html", clinic=clinic, tz=clinic.time_zone, tz_chosen=False)


def book_again_url(booking: Booking) -> str:
    """Where to book this kind of visit again (the type, if it still takes bookings; else the clinic)."""
    kind = booking.appointment_type
    # The page's language goes along, so a patient reading it in Spanish books again in Spanish.
    slug, lang = booking.clinic.slug, current_language()
    if kind.active:
        return url_for("pages.book_providers", clinic_slug=slug, type_slug=kind.slug, lang=lang)
    return url_for("pages.book_types", clinic_slug=slug, lang=lang)


def _join_url(booking: Booking, token: str) -> str | None:
    """The patient's video link: consult, which keeps join links' secrets, turns this token into one."""
    if booking.appointment_type.mode != VIDEO or booking.status != service.CONFIRMED:
        return None
    return links.manage_join_url(config().consult_public_url, token)


def _visit(booking: Booking, token: str) -> ical.PatientVisit:
    tz, _ = chosen_zone(booking.patient.time_zone)
    return calendar.patient_visit(
        booking,
        manage_url=links.manage_url(config().booking_public_url, token),
        join_url=_join_url(booking, token),
        time_zone=visit_zone(booking.appointment_type, booking.clinic, tz),
    )


def _context(booking: Booking, token: str) -> dict[str, Any]:
    tz, chosen = chosen_zone(booking.patient.time_zone)
    deadline = service.change_deadline(booking)
    now = utcnow()
    return {
        "booking": booking,
        "token": token,
        "kind": booking.appointment_type,
        "provider": booking.provider,
        "clinic": booking.clinic,
        "manage_url": links.manage_url(config().booking_public_url, token),
        "tz": tz,
        "tz_chosen": chosen,
        "shown_tz": visit_zone(booking.appointment_type, booking.clinic, tz),
        "deadline": deadline,
        "can_change": booking.status == service.CONFIRMED and now < deadline,
        "upcoming": booking.status == service.CONFIRMED and booking.end_at > now,
        "link_sent_now": booking.start_at - now <= JOIN_LINK_LEAD,
        # A type that allows two visits a day says so when the patient has another (issue 17 point 8).
        "same_day": booking.status == service.CONFIRMED
        and booking.end_at > now
        and sameday.others_that_day(get_session(), booking) > 0,
        "escort": escorts.status(booking),
    }


@bp.get("/manage/<token>")
def manage_booking(token: str) -> ResponseReturnValue:
    """The booking, what happens next, and what the patient can do with it."""
    booking = _booking(token)
    return render_template(
        "pages/manage.html",
        done=request.args.get("done"),
        join_url=_join_url(booking, token),
        book_again=book_again_url(booking),
        calendar_links=ical.add_to_calendar_links(_visit(booking, token)),
        **_context(booking, token),
    )


@bp.get("/m/<code>")
def short_link(code: str) -> ResponseReturnValue:
    """An SMS's short manage link: to the manage page of the same booking and version."""
    token = long_token(code, links.MANAGE)
    return redirect(url_for("pages.manage_booking", token=token))


@bp.get("/manage/<token>/calendar.ics")
def manage_calendar(token: str) -> ResponseReturnValue:
    """The booking as an .ics file for the patient's own calendar."""
    booking = _booking(token)
    body = calendar.booking_ics(_visit(booking, token), public_url=config().booking_public_url)
    return Response(
        body,
        mimetype="text/calendar",
        headers={"Content-Disposition": 'attachment; filename="appointment.ics"'},
    )


@bp.get("/manage/<token>/reschedule")
def manage_reschedule(token: str) -> ResponseReturnValue:
    """The same day-and-time picker, without this booking's own time counted as taken."""
    booking = _booking(token)
    context = _context(booking, token)
    if not context["can_change"]:
        return redirect(url_for("pages.manage_booking", token=token))
    session = get_session()

    def find(start: datetime, end: datetime) -> list[tuple[datetime, int]]:
        starts = search.find_slots(
            session=session,
            provider_id=booking.provider_id,
            appointment_type_id=booking.appointment_type_id,
            start=start,
            end=end,
            ignore_booking_id=booking.id,
        )
        return [(at, booking.provider_id) for at in starts if at != booking.start_at]

    tz = context["tz"]
    picker = build_picker(find, context["shown_tz"], horizon_days=booking.appointment_type.horizon_days)

    picker_path = url_for("pages.manage_reschedule", token=token)
    confirm_path = url_for("pages.manage_reschedule_confirm", token=token)

    def page_url(**args: Any) -> str:
        return f"{picker_path}?{urlencode({'tz': tz, **args})}"

    def slot_url(option: SlotOption) -> str:
        return f"{confirm_path}?{urlencode({'start': option.start.isoformat(), 'tz': tz})}"

    return render_template(
        "pages/reschedule.html", picker=picker, page_url=page_url, slot_url=slot_url, **context
    )


@bp.route("/manage/<token>/reschedule/confirm", methods=["GET", "POST"])
def manage_reschedule_confirm(token: str) -> ResponseReturnValue:
    """Confirm the new time (GET shows old and new; POST moves the booking)."""
    booking = _booking(token)
    context = _context(booking, token)
    tz = context["tz"]
    try:
        start = forms.SlotChoice(only=("start",)).load({"start": request.values.get("start")})["start"]
    except ValidationError:
        return redirect(url_for("pages.manage_reschedule", token=token, tz=tz))
    chosen = SlotOption(start, booking.provider_id, clock(to_zone(start, context["shown_tz"])))
    if request.method == "GET":
        return render_template("pages/reschedule_confirm.html", chosen=chosen, **context)
    try:
        with unit_of_work() as session:
            moved = service.reschedule_booking(
                session=session,
                booking_id=booking.id,
                start=start,
                expected_version=booking.version,
                by="patient",
            )
            new_token = service.manage_token(current_signer(), moved)
    except Conflict as exc:
        if exc.slug not in SLOT_TAKEN:
            raise
        alternatives = [
            SlotOption(at, booking.provider_id, clock(to_zone(at, context["shown_tz"])))
            for at in map(datetime.fromisoformat, exc.extra.get("alternatives", []))
        ]
        return (
            render_template(
                "pages/reschedule_confirm.html", chosen=chosen, alternatives=alternatives, **context
            ),
            409,
        )
    return redirect(url_for("pages.manage_booking", token=new_token, done="moved"), code=303)


@bp.route("/manage/<token>/cancel", methods=["GET", "POST"])
def manage_cancel(token: str) -> ResponseReturnValue:
    """Ask before cancelling (GET); cancel (POST)."""
    booking = _booking(token)
    context = _context(booking, token)
    if request.method == "GET":
        if not context["can_change"]:
            return redirect(url_for("pages.manage_booking", token=token))
        return render_template("pages/cancel.html", **context)
    with unit_of_work() as session:
        cancelled, _ = service.cancel_booking(
            session=session, booking_id=booking.id, by="patient", expected_version=booking.version
        )
        new_token = service.manage_token(current_signer(), cancelled)
    return redirect(url_for("pages.manage_booking", token=new_token, done="cancelled"), code=303)


def _escort_values(status: escorts.EscortStatus) -> dict[str, Any]:
    ref = status.escort
    if ref is None:
        return {}
    return {
        "escort_first_name": ref.first_name,
        "escort_phone": ref.phone,
        "escort_patient_first_name": ref.patient_first_name,
    }


@bp.route("/manage/<token>/escort", methods=["GET", "POST"])
def manage_escort(token: str) -> ResponseReturnValue:
    """Give, change (GET shows the form; POST saves) or remove who takes the patient home."""
    booking = _booking(token)
    context = _context(booking, token)
    if not context["upcoming"] or not (booking.appointment_type.requires_escort or context["escort"].escort):
        return redirect(url_for("pages.manage_booking", token=token))
    if request.method == "GET":
        values = _escort_values(context["escort"])
        return render_template("pages/escort.html", values=values, errors={}, **context)
    values = forms.form_values(request.form)
    with unit_of_work() as session:
        if values.get("remove"):
            escorts.remove_escort(session=session, booking_id=booking.id)
            return redirect(url_for("pages.manage_booking", token=token, done="escort"), code=303)
        escort, errors = load_escort(values, required=True)
        if escort is None:
            return render_template("pages/escort.html", values=values, errors=errors, **context), 422
        escorts.set_escort(session=session, booking_id=booking.id, details=escort)
    return redirect(url_for("pages.manage_booking", token=token, done="escort"), code=303)
