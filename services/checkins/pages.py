"""The pages patients, on-call staff and providers open from their signed links."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, g, has_request_context, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask.wrappers import Response
from flask_babel import Babel, get_locale, gettext
from marshmallow import ValidationError

from services.checkins import instruments, links, publishing, service, timeline
from services.checkins.models import COMPLETED, SENT, STARTED, Alert, Checkin, Patient
from services.checkins.runtime import get_runtime
from services.checkins.schemas import AckForm, AnswerForm
from shared.api import public
from shared.cache import Lru
from shared.db import get_db, get_session, unit_of_work
from shared.links import ALERT, CHECKIN, TIMELINE, current_signer
from shared.timeutil import format_local, utcnow

bp = public(Blueprint("pages", __name__))  # the signed token in the path is the credential

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
STATUS = {service.INVALID: 404, service.EXPIRED: 410, service.CLOSED: 410}
_ANSWER, _ACK = AnswerForm(), AckForm()
_TIMELINES = Lru(256)
# The pages' catalogues: translations/<language>/LC_MESSAGES/messages.po (and .mo); `make messages`.
TRANSLATIONS = Path(__file__).parent / "translations"
DEFAULT_LANGUAGE = "en"


@lru_cache(maxsize=1)
def supported_languages() -> tuple[str, ...]:
    """``("en", "es", ...)``: the source language, then each language with a compiled catalogue."""
    found = sorted(path.parents[1].name for path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo"))
    return (DEFAULT_LANGUAGE, *(code for code in found if code != DEFAULT_LANGUAGE))


def page_language() -> str:
    """The patient's language from the booking events; staff pages English; else the browser's."""
    chosen = g.get("page_language") if has_request_context() else None
    if chosen in supported_languages():
        return str(chosen)
    if not has_request_context():
        return DEFAULT_LANGUAGE
    return request.accept_languages.best_match(supported_languages(), default=DEFAULT_LANGUAGE)


def current_language() -> str:
    """The language this page is shown in, e.g. ``es``."""
    return str(get_locale() or DEFAULT_LANGUAGE)


def init_i18n(app: Flask) -> None:
    """Flask-Babel over the check-in pages' catalogue, each page in ``page_language``."""
    Babel(app, locale_selector=page_language, default_translation_directories=str(TRANSLATIONS))
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.jinja_env.globals["current_language"] = current_language


@bp.after_request
def _page_headers(response: Response) -> Response:
    response.vary.add("Accept-Language")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = CSP
    return response


def _problem(reason: str) -> ResponseReturnValue:
    return render_template("checkins/problem.html", reason=reason), STATUS[reason]


def _open(token: str, purpose: str, model: type) -> Any:
    row = service.open_by_token(
        session=get_session(), signer=current_signer(), token=token, purpose=purpose, model=model
    )
    _speak(row)
    return row


def _speak(row: Any) -> None:
    """Show this page in the check-in's patient's language; staff pages (alerts, timelines) in English."""
    if isinstance(row, Checkin):
        patient = get_session().get(Patient, row.patient_id)
        g.page_language = patient.language if patient is not None else DEFAULT_LANGUAGE
    else:
        g.page_language = DEFAULT_LANGUAGE


@bp.get("/c/<string:token>")
def checkin_page(token: str) -> ResponseReturnValue:
    """The next question of a check-in (or an earlier one, to change it), or why the link does not open."""
    try:
        checkin = _open(token, CHECKIN, Checkin)
    except service.CheckinError as exc:
        return _problem(exc.reason)
    return _question_page(token, checkin, errors={})


def _question_page(
    token: str, checkin: Checkin, errors: dict[str, Any], status: int = 200
) -> ResponseReturnValue:
    instrument = instruments.INSTRUMENTS[checkin.instrument]
    wording = instrument.wording(current_language())
    if checkin.status == COMPLETED:
        return render_template("checkins/done.html", token=token, instrument=instrument)
    if checkin.status not in (SENT, STARTED):
        return _problem(service.CLOSED)
    answered = service.answers_of(get_session(), checkin.id)
    upcoming = service.next_item(checkin, answered) or len(instrument.items)
    asked = request.args.get("item", type=int)
    item = asked if asked is not None and 1 <= asked <= upcoming else upcoming
    context = {
        "token": token,
        "instrument": instrument,
        "wording": wording,
        "item": item,
        "count": len(instrument.items),
        "question": wording.items[item - 1],
        "current": answered.get(item),
        "errors": errors,
        "back": item - 1 if item > 1 else None,
    }
    return render_template("checkins/question.html", **context), status


@bp.post("/c/<string:token>")
def answer(token: str) -> ResponseReturnValue:
    """Store one answer, then on to the next question, the crisis resources, or the thanks page."""
    try:
        with unit_of_work() as session:
            checkin = service.open_by_token(
                session=session, signer=current_signer(), token=token, purpose=CHECKIN, model=Checkin
            )
            assert isinstance(checkin, Checkin)
            _speak(checkin)
            try:
                form = _ANSWER.load(request.form.to_dict())
            except ValidationError as exc:
                return _question_page(token, checkin, errors=exc.normalized_messages(), status=422)
            instrument = instruments.INSTRUMENTS[checkin.instrument]
            if form["item"] > len(instrument.items) or not instrument.valid(form["value"]):
                return _question_page(
                    token, checkin, errors={"value": [gettext("Choose one of the answers.")]}, status=422
                )
            outcome = service.record_answer(
                session=session,
                checkin=checkin,
                item=form["item"],
                value=form["value"],
                rules=get_runtime().rules,
                now=utcnow(),
            )
            checkin_id = checkin.id
    except service.CheckinError as exc:
        return _problem(exc.reason)
    if outcome.crisis:
        publishing.publish_soon(get_runtime().publisher, checkin_id)
        return redirect(url_for("pages.support", token=token), code=303)
    return redirect(url_for("pages.checkin_page", token=token), code=303)


@bp.get("/c/<string:token>/support")
def support(token: str) -> ResponseReturnValue:
    """Crisis resources: 988 and what the clinic is doing, then on with the questions."""
    try:
        _open(token, CHECKIN, Checkin)
    except service.CheckinError as exc:
        return _problem(exc.reason)
    return render_template("checkins/support.html", token=token)


@bp.post("/c/<string:token>/stop")
def stop(token: str) -> ResponseReturnValue:
    """Stop every check-in of this patient (appointment messages go on)."""
    try:
        with unit_of_work() as session:
            checkin = service.open_by_token(
                session=session, signer=current_signer(), token=token, purpose=CHECKIN, model=Checkin
            )
            assert isinstance(checkin, Checkin)
            _speak(checkin)
            patient = session.get(Patient, checkin.patient_id)
            assert patient is not None
            service.stop_checkins(session=session, patient=patient, now=utcnow())
    except service.CheckinError as exc:
        return _problem(exc.reason)
    return render_template("checkins/stopped.html")


@bp.get("/alerts/<string:token>")
def alert_page(token: str) -> ResponseReturnValue:
    """An alert for on-call staff: when, the patient's timeline, the acknowledgement trail and form."""
    try:
        alert = _open(token, ALERT, Alert)
    except service.CheckinError as exc:
        return _problem(exc.reason)
    return _alert_page(token, alert, errors={})


def _alert_page(token: str, alert: Alert, errors: dict[str, Any], status: int = 200) -> ResponseReturnValue:
    session = get_session()
    (found,) = [
        a for a in timeline.alerts_with_acks(session, patient_id=alert.patient_id) if a["id"] == alert.id
    ]
    patient = session.get(Patient, alert.patient_id)
    assert patient is not None
    base_url = get_runtime().config.checkins_public_url
    timeline_url = links.timeline_url(current_signer(), base_url, patient, utcnow())
    return (
        render_template(
            "checkins/alert.html",
            token=token,
            alert=found,
            errors=errors,
            timeline_url=timeline_url,
            when=_when,
        ),
        status,
    )


@bp.post("/alerts/<string:token>")
def acknowledge(token: str) -> ResponseReturnValue:
    """Acknowledge an alert (who is handling it, and a note)."""
    try:
        with unit_of_work() as session:
            alert = service.open_by_token(
                session=session, signer=current_signer(), token=token, purpose=ALERT, model=Alert
            )
            assert isinstance(alert, Alert)
            _speak(alert)
            try:
                form = _ACK.load(request.form.to_dict())
            except ValidationError as exc:
                return _alert_page(token, alert, errors=exc.normalized_messages(), status=422)
            service.acknowledge_alert(
                session=session, alert=alert, by=form["by"], via="link", note=form["note"], now=utcnow()
            )
    except service.CheckinError as exc:
        return _problem(exc.reason)
    return redirect(url_for("pages.alert_page", token=token), code=303)


@bp.get("/timeline/<string:token>")
def timeline_page(token: str) -> ResponseReturnValue:
    """A patient's timeline for their provider."""
    try:
        patient = _open(token, TIMELINE, Patient)
    except service.CheckinError as exc:
        return _problem(exc.reason)
    assert isinstance(patient, Patient)
    session = get_session()
    # Providers reopen the same timeline far more often than it changes: the page is kept per revision.
    key = (get_db().url, patient.id, timeline.revision(session, patient))
    page: str | None = _TIMELINES.get(key)
    if page is None:
        data = timeline.build(session, patient, lambda at: _when(at, patient.time_zone))
        page = render_template("checkins/timeline.html", when=_when, zone=patient.time_zone, **data)
        _TIMELINES.put(key, page)
    return page


def _when(at: Any, zone: str = "UTC") -> str:
    return format_local(at, zone) if at is not None else ""
