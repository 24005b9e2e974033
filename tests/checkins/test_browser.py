"""The check-in, support, alert and timeline pages in Chromium on a phone, checked with axe-core."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask
from playwright.sync_api import expect

from services.checkins import links
from services.checkins.models import Alert
from shared.db import get_db
from shared.timeutil import utcnow
from tests.checkins.conftest import STAFF, booking_event, checkin_token, checkins, deliver, schedule
from tests.support.browser import assert_accessible, no_horizontal_scroll, record_loads, unchecked
from tests.support.http import serve


def artifact_dir(name: str) -> Path:
    """A directory under artifacts/ (gitignored): the screenshots docs/images/ takes its figures from."""
    path = Path(__file__).resolve().parents[2] / "artifacts" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Pages in fresh contexts (a phone unless told otherwise); every page loaded must pass axe by the end."""
    contexts: list[Any] = []
    loaded: list[str] = []

    def make(width: int = 360) -> Any:
        # bypass_csp only so the test can inject axe-core; the pages' CSP is checked in test_timeline.py.
        context = browser.new_context(viewport={"width": width, "height": 780}, bypass_csp=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        record_loads(page, loaded)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not unchecked(loaded), f"pages the test opened but never checked with axe: {unchecked(loaded)}"


def test_a_patient_answers_on_a_phone_and_meets_crisis_resources(
    app: Flask, new_page: Callable[..., Any]
) -> None:
    deliver(app, booking_event(start=utcnow() + timedelta(hours=30)))
    schedule(app)
    (checkin,) = checkins(app, plan_step="phq9-before-first")
    token = checkin_token(app, checkin)
    with serve(app) as base:
        page = new_page()
        page.goto(f"{base}/c/{token}")
        assert_accessible(page)
        no_horizontal_scroll(page)
        for item in range(1, 9):
            expect(page.get_by_text(f"Question {item} of 9")).to_be_visible()
            page.get_by_label("Not at all").check()
            page.get_by_role("button", name="Next").click()
        # Item 9: the keyboard alone picks "Several days".
        page.get_by_label("Not at all").focus()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/c/{token}/support")
        expect(page.get_by_role("heading", name="Help is available now")).to_be_visible()
        assert page.get_by_role("link", name="988").first.get_attribute("href") == "tel:988"
        assert_accessible(page)
        page.get_by_role("link", name="Continue with the questions").click()
        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        assert_accessible(page)

        staff = app.test_client()
        (alert,) = staff.get("/api/v1/alerts", headers=STAFF).json
        with app.app_context(), get_db().transaction() as session:
            row = session.get(Alert, uuid.UUID(alert["id"]))
            assert row is not None
            alert_path = links.alert_url(app.extensions["link_signer"], "", row)
        desk = new_page(width=1280)
        desk.goto(f"{base}{alert_path}")
        assert_accessible(desk)
        desk.get_by_label("Your name").fill("Dr. Maya Chen")
        desk.get_by_role("button", name="I am handling this").click()
        expect(desk.get_by_text("Dr. Maya Chen (link)")).to_be_visible()
        assert_accessible(desk)
        href = desk.get_by_role("link", name="Open the patient's timeline").get_attribute("href")
        assert href.startswith("http://checkins.test/timeline/")  # CHECKINS_PUBLIC_URL
        desk.goto(base + href.removeprefix("http://checkins.test"))
        expect(desk.get_by_role("heading", name="Check-in timeline")).to_be_visible()
        assert_accessible(desk)
        expect(desk.get_by_role("heading", name="Attendance and escort history")).to_be_visible()
        phone = new_page()
        phone.goto(desk.url)
        assert_accessible(phone)
        no_horizontal_scroll(phone)
        phone.screenshot(path=str(artifact_dir("screenshots") / "checkin-timeline-360.png"), full_page=True)


def test_a_spanish_patient_on_a_phone_answers_ratings_and_meets_crisis_resources_in_spanish(
    app: Flask, new_page: Callable[..., Any]
) -> None:
    deliver(app, booking_event(start=utcnow() + timedelta(hours=30), language="es"))
    schedule(app)
    (checkin,) = checkins(app, plan_step="phq9-before-first")
    token = checkin_token(app, checkin)
    shots = artifact_dir("screenshots")
    with serve(app) as base:
        page = new_page()  # 360 px wide
        page.goto(f"{base}/c/{token}")
        expect(page.get_by_text("Pregunta 1 de 9")).to_be_visible()
        assert page.locator("html").get_attribute("lang") == "es"
        # The PHQ-9 keeps its original English words (no official Spanish text found), marked as English.
        assert page.locator("fieldset").get_attribute("lang") == "en"
        expect(page.get_by_text("redacción original en inglés")).to_be_visible()
        assert_accessible(page)
        no_horizontal_scroll(page)
        page.screenshot(path=str(shots / "checkin-es-phq9-360.png"), full_page=True)
        page.get_by_role("button", name="Siguiente").click()
        expect(page.get_by_text("Elija una de las respuestas.")).to_be_hidden()  # the browser held it back
        for item in range(1, 9):
            expect(page.get_by_text(f"Pregunta {item} de 9")).to_be_visible()
            page.get_by_label("Not at all").check()
            page.get_by_role("button", name="Siguiente").click()
        page.get_by_label("Several days").check()
        page.get_by_role("button", name="Terminar").click()
        page.wait_for_url(f"{base}/c/{token}/support")
        expect(page.get_by_role("heading", name="Hay ayuda disponible ahora")).to_be_visible()
        expect(page.get_by_text("llame al 988 y oprima 2")).to_be_visible()
        assert page.get_by_role("link", name="988").first.get_attribute("href") == "tel:988"
        assert_accessible(page)
        no_horizontal_scroll(page)
        page.screenshot(path=str(shots / "checkin-es-crisis-360.png"), full_page=True)
        page.get_by_role("link", name="Continuar con las preguntas").click()
        expect(page.get_by_role("heading", name="Gracias")).to_be_visible()
        assert_accessible(page)

        with time_machine.travel(utcnow() + timedelta(days=2, hours=7), tick=False):
            schedule(app)
            (pain,) = [c for c in checkins(app, plan_step="pain-day-after") if c.status == "sent"]
            rating = new_page()
            rating.goto(f"{base}/c/{checkin_token(app, pain)}")
            expect(rating.get_by_text("¿Cuánto dolor tiene hoy?")).to_be_visible()
            assert_accessible(rating)
            no_horizontal_scroll(rating)
            rating.screenshot(path=str(shots / "checkin-es-pain-360.png"), full_page=True)
            rating.get_by_label("3", exact=True).check()
            rating.get_by_role("button", name="Terminar").click()
            expect(rating.get_by_role("heading", name="Gracias")).to_be_visible()
            assert_accessible(rating)
