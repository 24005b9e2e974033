"""The check-in, support, alert and timeline pages in Chromium on a phone, checked with axe-core."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from services.checkins import links
from services.checkins.models import Alert
from shared.db import get_db
from shared.timeutil import utcnow
from tests.checkins.conftest import STAFF, booking_event, checkin_token, checkins, deliver, schedule
from tests.support.browser import assert_accessible, no_horizontal_scroll, record_loads, unchecked
from tests.support.http import serve


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
        phone = new_page()
        phone.goto(desk.url)
        assert_accessible(phone)
        no_horizontal_scroll(phone)
