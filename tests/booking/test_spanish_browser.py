"""Issue 17 point 4 in Debian's Chromium, at 360 px and 1280 px: a patient whose phone speaks Spanish.

A visit booked in Spanish (Accept-Language es-MX) with its confirmation SMS and email recorded by notify in
Spanish; a patient who switches language half-way. Every page passes assert_accessible; Spanish screenshots go
to artifacts/screenshots/ (docs/images/ holds compressed copies).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.booking.test_pages_browser import Site, new_page, no_horizontal_scroll, outbox_texts, shoot, site
from tests.support.browser import assert_accessible
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

__all__ = ["new_page", "site"]  # the fixtures, shared with the booking pages' first browser tests

PATIENT = {"name": "Lucía Hernández", "phone": "+44 7911 123457", "email": "lucia@example.com"}
WIDTHS = (360, 1280)


def _lang(page: Any) -> str:
    return str(page.locator("html").get_attribute("lang"))


@pytest.mark.parametrize("width", WIDTHS)
def test_book_a_video_consultation_in_spanish(
    site: Site,
    new_page: Callable[..., Any],
    make_database_url: Callable[[str, str], str],
    redis_server: RedisServer,
    width: int,
) -> None:
    page = new_page(width=width, locale="es-MX")
    page.goto(f"{site.base}/book/clinic-consult")
    assert _lang(page) == "es"
    page.get_by_role("heading", name="¿Qué cita desea reservar?").wait_for()
    expect(page.get_by_text("45 minutos")).to_be_visible()
    no_horizontal_scroll(page)
    shoot(page, "es-1-appointment-type")
    page.get_by_role("link", name="Consultation").click()

    page.wait_for_url(re.compile(r"tz=Europe%2FLondon|tz=Europe/London"))
    page.get_by_role("heading", name="Elija una hora").wait_for()
    assert page.locator(".steps").inner_text() == "Paso 2 de 3"
    expect(page.get_by_text("Los horarios se muestran en")).to_be_visible()
    expect(page.get_by_text("Es la zona horaria de su dispositivo.")).to_be_visible()
    heading = page.locator("#times-title").inner_text()
    assert re.fullmatch(r"Horarios del \w+ \d+ de \w+", heading), heading
    chosen = page.locator("a.time").first.inner_text()
    assert re.fullmatch(r"\d{1,2}:\d\d [ap]\. m\.", chosen.replace("\u00a0", " ").replace("\u202f", " "))
    no_horizontal_scroll(page)
    shoot(page, "es-2-choose-time")
    page.locator("a.time").first.click()

    page.get_by_role("heading", name="Sus datos").wait_for()
    assert _lang(page) == "es"
    shoot(page, "es-3-details")
    page.get_by_label("Nombre completo").fill(PATIENT["name"])
    page.get_by_label("Número de celular").fill(PATIENT["phone"])
    page.get_by_label("Correo electrónico").fill(PATIENT["email"])
    page.get_by_label("Envíenme mensajes de texto sobre esta cita").check()
    page.get_by_role("button", name="Reservar la cita").click()
    # Nothing ticked in the intake: the error summary speaks Spanish and names the field.
    page.get_by_role("heading", name="Revise este dato").wait_for()
    expect(page.get_by_role("link", name="Motivo de la consulta: elija al menos una opción")).to_be_visible()
    shoot(page, "es-3b-details-error")
    page.get_by_label("Depresión").check()
    no_horizontal_scroll(page)
    page.get_by_role("button", name="Reservar la cita").click()

    page.get_by_role("heading", name="Su cita está reservada").wait_for()
    assert _lang(page) == "es"
    when = page.locator("dl.summary .when").inner_text()
    assert re.match(r"\w+ \d+ de \w+ de 2\d{3}, ", when), when
    assert page.get_by_role("link", name="Agréguela a su calendario").count() == 0  # a heading, not a link
    expect(page.get_by_role("heading", name="Agréguela a su calendario")).to_be_visible()
    no_horizontal_scroll(page)
    shoot(page, "es-4-confirmation")

    (booking,) = site.api("GET", "/api/v1/bookings").json()["items"]
    assert booking["patient"]["language"] == "es"

    texts, html_langs = outbox_texts(page, site, make_database_url, redis_server.url)
    assert set(texts) == {"+447911123457", PATIENT["email"]}
    assert html_langs == ["es"]  # the email's HTML part says its language
    sms, email = texts["+447911123457"], texts[PATIENT["email"]]
    assert "Clinic: su videoconsulta queda reservada para el " in sms
    assert "Le enviaremos su enlace para conectarse 1 hora antes." in sms
    assert "Responda STOP para darse de baja." in sms
    assert f"{site.base}/m/" in sms
    assert "Su videoconsulta del " in email
    assert "Hola, Lucía:" in email
    assert "Su videoconsulta está confirmada." in email
    for text in (sms, email):
        assert "depres" not in text.lower()


def test_switching_language_half_way_keeps_the_place(site: Site, new_page: Callable[..., Any]) -> None:
    page = new_page(width=360, locale="en-US")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{site.base}/book/clinic-consult/consult/{site.setup.provider_id}")
    page.wait_for_url(re.compile("tz=Europe"))
    assert _lang(page) == "en"
    assert_accessible(page)
    page.locator("a.day").nth(2).click()
    page.wait_for_url(re.compile("#times$"))
    day = re.search(r"day=([\d-]+)", page.url)
    assert day
    english_time = page.locator("a.time").first.inner_text()
    shoot(page, "switch-1-english")

    page.get_by_role("navigation", name="Language").get_by_role("link", name="Español").click()
    page.get_by_role("heading", name="Elija una hora").wait_for()
    assert _lang(page) == "es"
    assert f"day={day.group(1)}" in page.url  # the same day's times, in the same zone
    assert "tz=Europe" in page.url
    assert page.locator("a.time").count() > 0
    shoot(page, "switch-2-spanish")
    page.locator("a.time").first.click()
    page.get_by_role("heading", name="Sus datos").wait_for()  # the choice holds on the next page
    shoot(page, "switch-3-details")
    page.get_by_label("Nombre completo").fill(PATIENT["name"])
    page.get_by_label("Correo electrónico").fill(PATIENT["email"])
    page.get_by_label("Depresión").check()
    page.get_by_role("button", name="Reservar la cita").click()
    page.get_by_role("heading", name="Su cita está reservada").wait_for()
    shoot(page, "switch-4-confirmation")
    (booking,) = site.api("GET", "/api/v1/bookings").json()["items"]
    assert booking["patient"]["language"] == "es"

    # And back to English on the confirmation: the same page, the same booking.
    page.get_by_role("navigation", name="Idioma").get_by_role("link", name="English").click()
    page.get_by_role("heading", name="You're booked").wait_for()
    assert _lang(page) == "en"
    # The first time of that day, the one seen in English before the switch.
    assert english_time in page.locator("dl.summary .when").inner_text()
    assert_accessible(page)
    for url in requested:
        for private in ("Luc", "Hern", "lucia", "example.com"):
            assert private not in url, url
