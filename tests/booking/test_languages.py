"""The booking pages in the patient's language (issue 17 point 4): detection, fallback, the switch, dates.

Flask client, on SQLite and PostgreSQL. The catalogues themselves are checked in test_catalogues.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.booking.languages import language_name, supported_languages
from services.booking.models import OutboxEvent
from shared.db import get_db
from shared.events import load_event
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup
from tests.booking.pages_support import PATIENT_FORM, links, submit, text

LONDON = "Europe/London"


def _lang(page: str) -> str:
    match = re.search(r'<html lang="([^"]+)">', page)
    assert match, "no <html lang>"
    return match.group(1)


def test_english_and_spanish_are_supported() -> None:
    assert supported_languages()[:1] == ("en",)
    assert "es" in supported_languages()
    assert language_name("es") == "Español"
    assert language_name("en") == "English"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("es-MX", "es"),
        ("es-MX,es;q=0.9,en;q=0.5", "es"),
        ("es-419", "es"),
        ("fr", "en"),
        ("fr-CA,fr;q=0.9", "en"),
        ("fr,es;q=0.5", "es"),
        ("en-US,en;q=0.9,es;q=0.8", "en"),
        ("", "en"),
    ],
)
def test_the_language_follows_accept_language_with_fallback(
    pages_app: Flask, pages_client: FlaskClient, clock: object, accept: str, expected: str
) -> None:
    make_setup(pages_app)
    headers = {"Accept-Language": accept} if accept else {}
    page = pages_client.get("/book/clinic-consult", headers=headers)
    assert page.status_code == 200
    assert _lang(page.text) == expected
    assert page.headers["Content-Language"] == expected
    assert {"Accept-Language", "Cookie"} <= set(page.headers["Vary"].replace(" ", "").split(","))
    heading = "¿Qué cita desea reservar?" if expected == "es" else "What would you like to book?"
    assert heading in text(page.text)


def test_spanish_slot_step_has_spanish_dates_and_words(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    url = f"/book/clinic-consult/consult/{setup.provider_id}?tz={LONDON}&day=2026-03-03"
    page = text(pages_client.get(url, headers={"Accept-Language": "es-MX"}).text)
    assert "Paso 2 de 3" in page
    assert "Elija una hora" in page
    assert "45 minutos · Videollamada" in page
    assert "Los horarios se muestran en hora de London (Europe/London, GMT)" in page
    assert "Horarios del martes 3 de marzo" in page
    assert "2:00 p. m." in page  # 9:00 in New York
    assert "lun 2 mar" in page  # a day button: Monday 2 March
    assert "30 horarios" in page
    assert "Times on" not in page


def test_spanish_details_and_errors(pages_app: Flask, pages_client: FlaskClient, clock: object) -> None:
    setup = make_setup(pages_app, asks_intake=True)
    start = "2026-03-03T15:00:00%2B00:00"
    url = f"/book/clinic-consult/consult/{setup.provider_id}/details?start={start}&provider_id={setup.provider_id}&tz={LONDON}"
    es = {"Accept-Language": "es"}
    form = pages_client.get(url, headers=es)
    page = text(form.text)
    assert "martes 3 de marzo de 2026, 3:00 p. m." in page
    assert "Es decir, el martes 3 de marzo de 2026, 10:00 a. m. para Dr. Test" in page
    assert "¿Cuál es el motivo de su consulta?" in page
    assert "Dolor crónico" in page

    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    refused = pages_client.post(
        url,
        headers=es,
        data={
            "csrf_token": token.group(1),
            "start": "2026-03-03T15:00:00+00:00",
            "provider_id": setup.provider_id,
            "phone": "12",
            "sms_consent": "yes",
        },
    )
    assert refused.status_code == 422
    page = text(refused.text)
    assert "Revise estos datos" in page
    assert "Nombre completo: escriba su nombre completo" in page
    assert "Número de celular: no es un número de teléfono" in page
    assert "Motivo de la consulta: elija al menos una opción" in page


def test_the_switch_keeps_the_page_and_is_remembered(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    path = f"/book/clinic-consult/consult/{setup.provider_id}"
    english = pages_client.get(f"{path}?tz={LONDON}&day=2026-03-03", headers={"Accept-Language": "en-US"})
    switch = re.search(r'<nav class="languages" aria-label="Language">(.*?)</nav>', english.text, re.S)
    assert switch, "no language switch"
    assert '<span class="current" lang="en" aria-current="true">English</span>' in switch.group(1)
    href = re.search(r'<a href="([^"]+)" lang="es" hreflang="es">Español</a>', switch.group(1))
    assert href
    spanish_url = href.group(1).replace("&amp;", "&")
    # The same page (path, zone and day kept), in Spanish; nothing but the page's own query and the language.
    assert spanish_url == f"{path}?tz=Europe%2FLondon&day=2026-03-03&lang=es"

    spanish = pages_client.get(spanish_url, headers={"Accept-Language": "en-US"})
    assert _lang(spanish.text) == "es"
    assert "Horarios del martes 3 de marzo" in text(spanish.text)
    cookie = spanish.headers["Set-Cookie"]
    assert cookie.startswith("lang=es;")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie

    # The choice outlives the page: the next step is in Spanish although the browser prefers English.
    details = pages_client.get(links(spanish.text, "time")[0], headers={"Accept-Language": "en-US"})
    assert _lang(details.text) == "es"
    assert "Sus datos" in text(details.text)
    # And it can be switched back.
    back = pages_client.get(f"{path}?lang=en", headers={"Accept-Language": "es"})
    assert _lang(back.text) == "en"
    assert _lang(pages_client.get(path).text) == "en"


def test_an_unknown_language_in_the_switch_is_ignored(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    make_setup(pages_app)
    page = pages_client.get("/book/clinic-consult?lang=xx", headers={"Accept-Language": "es"})
    assert page.status_code == 200
    assert _lang(page.text) == "es"
    assert "Set-Cookie" not in page.headers or "lang=" not in page.headers["Set-Cookie"]


def test_problem_pages_follow_the_language(pages_client: FlaskClient) -> None:
    missing = pages_client.get("/manage/not-a-token", headers={"Accept-Language": "es-MX"})
    assert missing.status_code == 404
    assert _lang(missing.text) == "es"
    assert "Este enlace no funciona" in text(missing.text)
    assert "Este enlace no es válido." in text(missing.text)


def _payloads(app: Flask) -> list[dict[str, Any]]:
    with app.app_context(), get_db().transaction() as session:
        return [row.payload for row in session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))]


def test_the_api_stores_the_language_and_the_event_carries_it(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    body = booking_body(setup, "2026-03-03T15:00:00+00:00", language="es")
    created = pages_client.post("/api/v1/bookings", json=body, headers=STAFF)
    assert created.status_code == 201, created.json
    assert created.json["patient"]["language"] == "es"
    (event,) = _payloads(pages_app)
    assert event["booking"]["patient"]["language"] == "es"
    assert load_event(event).booking.patient.language == "es"

    # A later booking that does not say (staff on the phone) keeps the patient's language.
    again = pages_client.post(
        "/api/v1/bookings", json=booking_body(setup, "2026-03-04T15:00:00+00:00"), headers=STAFF
    )
    assert again.status_code == 201, again.json
    assert again.json["patient"]["id"] == created.json["patient"]["id"]
    assert again.json["patient"]["language"] == "es"
    # A new patient with no language is English.
    other = booking_body(setup, "2026-03-05T15:00:00+00:00", email="other@example.com", phone="+14155552672")
    assert (
        pages_client.post("/api/v1/bookings", json=other, headers=STAFF).json["patient"]["language"] == "en"
    )


def test_a_wrong_language_is_refused_at_its_field(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    refused = pages_client.post(
        "/api/v1/bookings",
        json=booking_body(setup, "2026-03-03T15:00:00+00:00", language="fr"),
        headers=STAFF,
    )
    assert refused.status_code == 422
    assert refused.mimetype == "application/problem+json"
    (param,) = refused.json["invalid_params"]
    assert param["name"] == "patient.language"
    assert "en" in param["reason"]
    assert "es" in param["reason"]
    assert _payloads(pages_app) == []


def test_a_page_booking_stores_the_pages_language_and_the_manage_page_follows_it(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    start = "2026-03-03T15:00:00%2B00:00"
    url = f"/book/clinic-consult/consult/{setup.provider_id}/details?start={start}&provider_id={setup.provider_id}&tz={LONDON}"
    pages_client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "es-MX"  # every request of this browser
    form = pages_client.get(url)
    booked = submit(pages_client, form.text, **PATIENT_FORM)
    assert booked.status_code == 303, text(booked.text)
    (event,) = _payloads(pages_app)
    assert event["booking"]["patient"]["language"] == "es"
    # Opened later in a browser that prefers English (a shared computer, the link from the SMS): still Spanish,
    # the language the patient booked in, until this browser switches.
    manage = pages_client.get(booked.headers["Location"], headers={"Accept-Language": "en-US"})
    assert _lang(manage.text) == "es"
    assert "Su cita está reservada" in text(manage.text)
    switched = pages_client.get(booked.headers["Location"] + "&lang=en", headers={"Accept-Language": "en-US"})
    assert _lang(switched.text) == "en"
