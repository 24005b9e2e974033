"""The patient-facing booking pages: server-rendered, small, accessible, with no asset from outside.

``/book/<clinic>`` (public) and ``/invite/<token>`` (private invitation) lead through type, provider, time and
details to a booking, and ``.../course/<template>`` to a whole treatment course; ``/manage/<token>`` shows
a booking and lets the patient reschedule, cancel or add it to their calendar; ``/course/<token>`` lists a
course's sessions and cancels some or all; ``/d/<code>`` is the day-before safety check; ``/staff/day`` the
staff day sheet. Views stay thin: they call the same business operations as the JSON API.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import RequestEntityTooLarge, TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from services.booking.config import BookingConfig
from services.booking.pages import book, course, course_book, daycheck, manage
from services.booking.pages.common import bp, helpers, wants_problem
from services.booking.pages.daysheet import staff_bp
from services.booking.pages.i18n import N_, current_language, init_i18n, remember_language
from shared.problems import Problem, from_problem

csrf = CSRFProtect()

# Forms that re-render with the patient's input kept when their CSRF token has gone stale.
KEEPS_INPUT_ON_STALE_FORM = {
    "pages.book_details",
    "pages.invite_details",
    "pages.book_course",
    "pages.invite_course",
}

_PROBLEM_HEADLINES = {
    "link-expired": lazy_gettext("This link has expired"),
    "link-invalid": lazy_gettext("This link does not work"),
    "link-outdated": lazy_gettext("There is a newer link for this booking"),
    "invitation-used": lazy_gettext("This invitation has already been used"),
    "change-window-closed": lazy_gettext("This appointment can no longer be changed online"),
    "not-found": lazy_gettext("We could not find that page"),
    "not-bookable": lazy_gettext("This appointment is not taking bookings"),
    "same-day": lazy_gettext("You already have this kind of appointment that day"),
}
# API details the pages show as they are (gettext(exc.detail)), so the catalogue has them.
_DETAILS = (N_("You already have this kind of appointment on that day; please choose another day."),)


def init_pages(app: Flask, config: BookingConfig) -> None:
    """Register the pages, CSRF protection, the submission rate limit and the security headers on ``app``."""
    app.config.update(
        SECRET_KEY=config.cookie_key,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.booking_public_url.startswith("https://"),
        # The API is not cookie-authenticated (bearer keys, signed links), so only page forms need tokens.
        WTF_CSRF_CHECK_DEFAULT=False,
        # A patient may take a while over the form; the session cookie still ties the token to the browser.
        WTF_CSRF_TIME_LIMIT=6 * 3600,
    )
    if config.trusted_proxies:
        proxies = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    csrf.init_app(app)
    init_i18n(app, secure_cookie=config.booking_public_url.startswith("https://"))
    app.register_blueprint(bp)
    app.register_blueprint(staff_bp)

    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=config.rate_limit_storage_url or config.redis_url,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1},
        # A Redis outage must not stop patients from booking: count in memory until it is back.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        key_prefix="booking-pages",
        strategy="moving-window",
    )
    app.extensions["pages_limiter"] = limiter
    limited = submissions(app)

    @limiter.request_filter
    def _not_a_submission() -> bool:
        # Only submissions carry a limit. Flask-Limiter looks up the limits of every request (the API's and
        # slot search's too) unless told it has none: 4% of a booking's CPU, 5% of a cached slot search's.
        return request.endpoint not in limited

    shared_limit = limiter.shared_limit(
        config.booking_rate_limit, scope="patient-submissions", methods=["POST"]
    )
    for endpoint in limited:
        app.view_functions[endpoint] = shared_limit(app.view_functions[endpoint])  # type: ignore[assignment]


def submissions(app: Flask) -> frozenset[str]:
    """The pages' endpoints that take a POST: the forms under CSRF and the shared submission limit."""
    # Every POST of the pages changes data. Read from the routes: a hand-kept list once missed two forms.
    return frozenset(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(f"{bp.name}.") and "POST" in (rule.methods or ())
    )


@bp.before_request
def _check_csrf() -> None:
    if request.method != "POST":
        return
    try:
        csrf.protect()
    except CSRFError:
        if request.endpoint in KEEPS_INPUT_ON_STALE_FORM:
            g.stale_form = True
            return
        raise


# The staff key's day sheet shares the pages' templates, headers and helpers, but not their public mark.
staff_bp.context_processor(helpers)


@bp.after_request
@staff_bp.after_request
def _page_headers(response: Response) -> Response:
    # Manage and invitation URLs carry signed tokens: never send them on as a Referer, never cache the pages.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'",
    )
    if request.endpoint != "pages.static":
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Language"] = current_language()
        remember_language(response)
    started = g.get("request_started")
    if started is not None:
        # Time spent in the app, rendering included: what the pages benchmark reads.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


def _problem_page(status: int, headline: str, detail: str, **context: Any) -> ResponseReturnValue:
    return render_template("pages/problem.html", headline=headline, detail=detail, **context), status


@bp.errorhandler(Problem)
def _problem(exc: Problem) -> ResponseReturnValue:
    if wants_problem():  # an API client holding a page's link gets the API's answer
        return from_problem(exc)
    headline = _PROBLEM_HEADLINES.get(exc.slug) or gettext("Something needs your attention")
    # The detail is the API's English sentence; the catalogue has the ones the pages can meet.
    page = render_template("pages/problem.html", headline=headline, detail=gettext(exc.detail), slug=exc.slug)
    return page, exc.status, exc.headers  # e.g. a 503's Retry-After


@bp.errorhandler(CSRFError)
def _stale(_exc: CSRFError) -> ResponseReturnValue:
    return _problem_page(
        400,
        gettext("This page was open for too long"),
        gettext("For your security the form has expired. Go back, reload the page and try again."),
    )


@bp.errorhandler(TooManyRequests)
def _too_many(_exc: TooManyRequests) -> ResponseReturnValue:
    return _problem_page(
        429,
        gettext("Please wait a moment"),
        gettext(
            "We received many requests from your connection in a short time. Wait a minute, then go back "
            "and try again; nothing has been booked or changed by the request that was stopped."
        ),
    )


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> ResponseReturnValue:
    return _problem_page(
        413,
        gettext("That is more than this form takes"),
        gettext(
            "What was sent is far longer than any answer on this page. Go back, shorten what you typed or "
            "pasted, and try again; nothing has been booked or changed."
        ),
    )


__all__ = ["book", "course", "course_book", "daycheck", "init_pages", "manage"]
