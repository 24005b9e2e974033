"""The pages in the patient's language: detection, the language switch, and dates and times in that language.

Languages are data: a catalogue under ``translations/<language>/`` adds one (docs/booking-pages.md#languages).
"""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import urlencode

from babel.dates import format_date, format_datetime, format_time
from flask import Flask, current_app, g, request
from flask_babel import Babel, get_locale, gettext
from werkzeug.wrappers import Response

from services.booking.languages import DEFAULT_LANGUAGE, TRANSLATIONS, language_name, supported_languages

# The patient's choice from the language switch, kept for a year; it names a language, nothing personal.
LANGUAGE_COOKIE = "lang"
LANGUAGE_PARAM = "lang"


def init_i18n(app: Flask, *, secure_cookie: bool) -> None:
    """Flask-Babel over the pages' catalogues, choosing each request's language with ``page_language``."""
    Babel(app, locale_selector=page_language, default_translation_directories=str(TRANSLATIONS))
    # {% trans %} blocks are laid out for reading: their whitespace is not part of the message.
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.config["LANGUAGE_COOKIE_SECURE"] = secure_cookie


def _supported(raw: str | None) -> str | None:
    return raw if raw in supported_languages() else None


def page_language() -> str:
    """The switch's choice (this request's ``?lang=``, else the cookie), the booking's, else the browser's."""
    chosen = (
        _supported(request.args.get(LANGUAGE_PARAM))
        or _supported(request.cookies.get(LANGUAGE_COOKIE))
        or _supported(g.get("patient_language"))
    )
    if chosen:
        return chosen
    # es-MX, es-419 or es alone all find the Spanish catalogue; a language without one gets English.
    return request.accept_languages.best_match(supported_languages(), default=DEFAULT_LANGUAGE)


def current_language() -> str:
    """The language this page is shown in, e.g. ``es``."""
    return str(get_locale() or DEFAULT_LANGUAGE)


def remember_language(response: Response) -> Response:
    """Keep a switched-to language for the next pages, and tell caches the page depends on the language."""
    chosen = _supported(request.args.get(LANGUAGE_PARAM))
    if chosen and request.cookies.get(LANGUAGE_COOKIE) != chosen:
        response.set_cookie(
            LANGUAGE_COOKIE,
            chosen,
            max_age=365 * 24 * 3600,
            samesite="Lax",
            httponly=True,
            secure=bool(current_app.config.get("LANGUAGE_COOKIE_SECURE")),
        )
    response.vary.update(("Accept-Language", "Cookie"))
    return response


def language_links() -> list[tuple[str, str, str, bool]]:
    """The switch: (code, name in itself, this page in that language, whether it is the current one)."""
    here = current_language()
    query = [(k, v) for k, v in request.args.items(multi=True) if k != LANGUAGE_PARAM]
    return [
        (
            code,
            language_name(code),
            f"{request.path}?{urlencode([*query, (LANGUAGE_PARAM, code)])}",
            code == here,
        )
        for code in supported_languages()
    ]


def N_(message: str) -> str:
    """Mark ``message`` for the catalogues; the page translates it where it shows it."""
    return message


# Dates and times: each pattern (CLDR syntax) is a message, so a catalogue says how its language writes them.
def clock(local: datetime) -> str:
    """``9:30 AM`` (``9:30 a. m.``) for a local datetime."""
    # TRANSLATORS: a CLDR time pattern (https://cldr.unicode.org), e.g. "h:mm a" or "H:mm".
    return format_time(local, gettext("h:mm a"), locale=get_locale())


def day_label(day: date) -> str:
    """``Tue 3 Mar`` (``martes 3 de marzo``) for a date."""
    # TRANSLATORS: a CLDR date pattern for a day in a sentence ("Times on Tue 3 Mar").
    return format_date(day, gettext("EEE d MMM"), locale=get_locale())


def weekday(day: date) -> str:
    """``Tue`` (``mar``): a day button's weekday."""
    # TRANSLATORS: a CLDR date pattern for a day button's weekday.
    return format_date(day, gettext("EEE"), locale=get_locale())


def day_month(day: date) -> str:
    """``3 Mar`` (``3 mar``): a day button's date."""
    # TRANSLATORS: a CLDR date pattern for a day button's date.
    return format_date(day, gettext("d MMM"), locale=get_locale())


def long_when(local: datetime) -> str:
    """``Tuesday 3 March 2026, 10:00 AM`` for a local datetime."""
    # TRANSLATORS: a CLDR date and time pattern for an appointment's full date and time.
    return format_datetime(local, gettext("EEEE d MMMM y, h:mm a"), locale=get_locale())
