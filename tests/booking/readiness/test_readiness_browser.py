"""Issue 19 in Debian's Chromium at 360 px and 1280 px: the day-before safety check (English and Spanish) and
the staff day sheet, served over real HTTP on PostgreSQL. Every page passes axe; screenshots go to
artifacts/screenshots/ (docs/images/ holds copies of a few)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from flask import Flask
from playwright.sync_api import expect

from services.booking import create_app
from services.booking.config import BookingConfig
from shared import links
from shared.config import load
from shared.timeutil import utcnow
from tests.booking.conftest import STAFF
from tests.booking.factories import ChairSetup, chair_body, make_chair_setup
from tests.booking.test_pages_browser import new_page, shoot
from tests.support.browser import no_horizontal_scroll
from tests.support.http import serve
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

__all__ = ["new_page"]  # the fixture, shared with the booking pages' browser tests


def _next_weekday() -> date:
    day = (utcnow() + timedelta(days=2)).date()
    while day.weekday() >= 5:  # the demo chairs and providers work Monday to Friday
        day += timedelta(days=1)
    return day


@pytest.fixture
def chairs_site(
    make_database_url: Callable[[str, str], str], redis_server: RedisServer
) -> Iterator[tuple[Flask, str, ChairSetup]]:
    config = load(
        BookingConfig,
        environ={},
        database_url=make_database_url("booking", "postgresql"),
        redis_url=redis_server.url,
        log_format="text",
        booking_rate_limit="600 per minute",
    )
    app = create_app(config)
    setup = make_chair_setup(app, providers=2, chairs=2)
    with serve(app) as base:
        yield app, base, setup
    app.extensions["db"].dispose()


def _book(base: str, setup: ChairSetup, day: date, at: str, provider: int, **patient: Any) -> dict[str, Any]:
    start = datetime.combine(day, time.fromisoformat(at), ZoneInfo(setup.provider_tz))
    body = chair_body(setup, start.isoformat(), provider, **patient)
    created = requests.post(f"{base}/api/v1/bookings", json=body, headers=STAFF, timeout=10)
    assert created.status_code == 201, created.text
    return dict(created.json())


def _check_url(app: Flask, base: str, booking: dict[str, Any]) -> str:
    return links.short_day_check_url(
        app.extensions["booking"].signer.keys,
        base,
        booking_id=booking["id"],
        version=booking["version"],
        ends_at=datetime.fromisoformat(booking["end"]),
    )


def test_patients_answer_the_safety_check_and_staff_see_who_is_ready(
    chairs_site: tuple[Flask, str, ChairSetup], new_page: Callable[..., Any]
) -> None:
    app, base, setup = chairs_site
    day = _next_weekday()
    sam = _book(base, setup, day, "10:00", 0, name="Sam Ready", email="sam@example.com")
    lucia = _book(
        base, setup, day, "10:30", 1, name="Lucía Llamada", email="lucia@example.com", language="es"
    )
    _book(base, setup, day, "13:00", 0, name="Kim Later", email="kim@example.com")

    page = new_page(width=360)
    page.goto(_check_url(app, base, sam))
    page.get_by_role("heading", name="Before your visit: a safety check").wait_for()
    no_horizontal_scroll(page)
    shoot(page, "daycheck-1-questions")
    page.get_by_role("button", name="Send my answers").click()
    page.get_by_role("heading", name="Please check these").wait_for()
    expect(page.get_by_role("link", name="Have you arranged for a support person").first).to_be_visible()
    shoot(page, "daycheck-2-unanswered")
    for group in page.locator("fieldset.yes-no").all():
        group.get_by_label("Yes", exact=True).check()
    page.get_by_role("button", name="Send my answers").click()
    page.get_by_role("heading", name="You're all set").wait_for()
    no_horizontal_scroll(page)
    shoot(page, "daycheck-3-all-set")

    spanish = new_page(width=360, locale="es-MX")
    spanish.goto(_check_url(app, base, lucia))
    spanish.get_by_role("heading", name="Antes de su visita: un control de seguridad").wait_for()
    assert spanish.locator("html").get_attribute("lang") == "es"
    shoot(spanish, "daycheck-es-questions")
    for n, group in enumerate(spanish.locator("fieldset.yes-no").all()):
        group.get_by_label("No" if n == 0 else "Sí", exact=True).check()
    spanish.get_by_role("button", name="Enviar mis respuestas").click()
    spanish.get_by_role("heading", name="La clínica le llamará").wait_for()
    no_horizontal_scroll(spanish)
    shoot(spanish, "daycheck-es-call")

    made = requests.post(
        f"{base}/api/v1/readiness/links",
        json={"clinic_id": setup.clinic_id, "day": day.isoformat()},
        headers=STAFF,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    sheet = new_page(width=360)
    sheet.goto(base + urlsplit(made.json()["url"]).path)
    sheet.get_by_role("heading", name="Who is ready:").wait_for()
    no_horizontal_scroll(sheet)
    shoot(sheet, "day-sheet")
    sheet.set_viewport_size({"width": 1280, "height": 780})
    no_horizontal_scroll(sheet)
    rows = sheet.locator("table.day-sheet tbody tr")
    assert rows.count() == 3
    texts = [row.inner_text() for row in rows.all()]
    assert any("Sam" in t and "All clear" in t for t in texts)
    assert any("Lucía" in t and "Needs a call" in t for t in texts)
    assert any("Kim" in t and "Not answered" in t for t in texts)
    assert "Ready" not in sheet.locator("main").inner_text()  # first names only
    assert "alcohol" not in sheet.content()
    expect(sheet.get_by_role("columnheader", name="Escort")).to_have_count(2)  # one table per provider
