"""The course page in Debian's Chromium at 360 px, in English and in Spanish: see every session, cancel this and
the following. Every page passes assert_accessible; screenshots go to artifacts/screenshots/ (docs/images/ holds
compressed copies of the 360 px ones)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.booking.factories import PATIENT, make_chair_setup
from tests.booking.test_pages_browser import Site, new_page, shoot, site
from tests.support.browser import assert_accessible, no_horizontal_scroll

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

__all__ = ["new_page", "site"]  # the fixtures, shared with the booking pages' browser tests

WORDS = {
    "en": {
        "locale": "en-US",
        "title": "Your course of sessions",
        "session": "Session {n} of 6",
        "cancel_from": "Cancel Session 4 of 6 and the following",
        "ask": "Cancel these 3 sessions?",
        "yes": "Yes, cancel these sessions",
        "done": "We have cancelled these 3 sessions (4, 5, 6)",
        "stopped": "Stopped",
    },
    "es": {
        "locale": "es-MX",
        "title": "Su tratamiento",
        "session": "Sesión {n} de 6",
        "cancel_from": "Cancelar Sesión 4 de 6 y las siguientes",
        "ask": "¿Cancelar estas 3 sesiones?",
        "yes": "Sí, cancelar estas sesiones",
        "done": "Hemos cancelado estas 3 sesiones (4, 5, 6)",
        "stopped": "Interrumpido",
    },
}


def _book_course(site: Site, language: str) -> dict[str, Any]:
    """A six-session infusion course booked through the staff API, at the earliest plan from now."""
    setup = make_chair_setup(site.app, providers=1, chairs=1, slug="course")
    template = site.api(
        "POST",
        "/api/v1/course-templates",
        json={
            "clinic_id": setup.clinic_id,
            "slug": "induction",
            "name": "Induction",
            "session_type_id": setup.type_id,
            "sessions": 6,
            "min_hours_between": 24,
            "max_per_week": 3,
            "within_days": 21,
            "same_provider": "required",
        },
    ).json()
    plan = site.api("POST", "/api/v1/courses/plan", json={"template_id": template["id"]})
    assert plan.status_code == 200, plan.text
    sessions = [{"start": s["start"], "provider_id": s["provider_id"]} for s in plan.json()["sessions"]]
    body = {"template_id": template["id"], "sessions": sessions, "patient": {**PATIENT, "language": language}}
    booked = site.api("POST", "/api/v1/courses", json=body)
    assert booked.status_code == 201, booked.text
    return dict(booked.json())


@pytest.mark.parametrize("language", ["en", "es"])
def test_see_a_course_and_cancel_this_and_the_following_on_a_phone(
    site: Site, new_page: Callable[..., Any], language: str
) -> None:
    words = WORDS[language]
    course = _book_course(site, language)
    page = new_page(width=360, locale=words["locale"])
    page.goto(course["course_url"].replace("http://127.0.0.1:8001", site.base))
    page.get_by_role("heading", name=words["title"], level=1).wait_for()
    assert page.locator("html").get_attribute("lang") == language
    for n in range(1, 7):
        expect(page.get_by_role("heading", name=words["session"].format(n=n), exact=True)).to_be_visible()
    assert page.locator("a.session-link").count() == 6
    no_horizontal_scroll(page)
    shoot(page, f"course-{language}-1-page")

    page.get_by_role("link", name=words["cancel_from"]).click()
    page.get_by_role("heading", name=words["ask"]).wait_for()
    assert page.locator("ul.going li").count() == 3
    no_horizontal_scroll(page)
    shoot(page, f"course-{language}-2-cancel")
    page.get_by_role("button", name=words["yes"]).click()

    page.get_by_role("status").filter(has_text=words["done"]).wait_for()
    assert_accessible(page)
    no_horizontal_scroll(page)
    expect(page.locator("dl.summary")).to_contain_text(words["stopped"])
    shoot(page, f"course-{language}-3-cancelled")
    staff = site.api("GET", f"/api/v1/courses/{course['id']}").json()
    assert [s["status"] for s in staff["sessions"]] == ["confirmed"] * 3 + ["cancelled"] * 3
    assert staff["status"] == "stopped"
    assert staff["stopped_by"] == "patient"
