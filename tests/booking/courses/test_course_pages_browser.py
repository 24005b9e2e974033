"""Courses in Debian's Chromium at 360 px, in English and in Spanish: book a whole course from the clinic's link
(one session swapped), then see every session and cancel this and the following. Every page passes assert_accessible; screenshots go to artifacts/screenshots/ (docs/images/ holds
compressed copies of the 360 px ones)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from shared import links
from tests.booking.factories import PATIENT, make_chair_setup
from tests.booking.test_pages_browser import Site, new_page, shoot, site
from tests.support.browser import assert_accessible, no_horizontal_scroll

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

__all__ = ["new_page", "site"]  # the fixtures, shared with the booking pages' browser tests

WORDS = {
    "en": {
        "locale": "en-US",
        "book_title": "Book your course: Induction",
        "other_time": "Choose another time for this session",
        "name": "Full name",
        "email": "Email address",
        "book": "Book all 6 sessions",
        "booked": "Your 6 sessions are booked",
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
        "book_title": "Reserve su tratamiento: Induction",
        "other_time": "Elegir otro horario para esta sesión",
        "name": "Nombre completo",
        "email": "Correo electrónico",
        "book": "Reservar las 6 sesiones",
        "booked": "Sus 6 sesiones quedan reservadas",
        "title": "Su tratamiento",
        "session": "Sesión {n} de 6",
        "cancel_from": "Cancelar Sesión 4 de 6 y las siguientes",
        "ask": "¿Cancelar estas 3 sesiones?",
        "yes": "Sí, cancelar estas sesiones",
        "done": "Hemos cancelado estas 3 sesiones (4, 5, 6)",
        "stopped": "Interrumpido",
    },
}


def _template(site: Site) -> dict[str, Any]:
    """A six-session infusion course template in a clinic of one provider and one chair."""
    setup = make_chair_setup(site.app, providers=1, chairs=1, slug="course")
    answer = site.api(
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
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _book_on_the_page(page: Any, site: Site, words: dict[str, str]) -> None:
    """Open the course link, swap the last session for another offered time, enter details, book once."""
    page.goto(f"{site.base}/book/clinic-course/course/induction")
    page.get_by_role("heading", name=words["book_title"], level=1).wait_for()
    page.wait_for_url(re.compile(r"tz="))  # the page reloads once in the phone's own zone
    page.get_by_role("heading", name=words["book_title"], level=1).wait_for()
    no_horizontal_scroll(page)
    shoot(page, f"course-{words['lang']}-0-book")
    last = page.locator("#session-6")
    before = last.locator(".when").inner_text()
    last.get_by_text(words["other_time"]).click()
    last.locator("a.alt").first.click()
    page.wait_for_url(re.compile("#session-6"))
    page.get_by_role("heading", name=words["book_title"], level=1).wait_for()
    assert_accessible(page)
    assert page.locator("#session-6 .when").inner_text() != before
    page.get_by_label(words["name"]).fill(PATIENT["name"])
    page.get_by_label(words["email"]).fill(PATIENT["email"])
    page.get_by_role("button", name=words["book"]).click()
    page.get_by_role("status").filter(has_text=words["booked"]).wait_for()


@pytest.mark.parametrize("language", ["en", "es"])
def test_book_a_course_then_cancel_this_and_the_following_on_a_phone(
    site: Site, new_page: Callable[..., Any], language: str
) -> None:
    words = {**WORDS[language], "lang": language}
    _template(site)
    page = new_page(width=360, locale=words["locale"])
    _book_on_the_page(page, site, words)
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
    token = page.url.split("/course/")[1].split("?")[0]
    course_id = site.app.extensions["link_signer"].verify(token, purpose=links.COURSE).subject
    staff = site.api("GET", f"/api/v1/courses/{course_id}").json()
    assert [s["status"] for s in staff["sessions"]] == ["confirmed"] * 3 + ["cancelled"] * 3
    assert staff["status"] == "stopped"
    assert staff["stopped_by"] == "patient"


def test_days_and_times_replan_the_course_and_a_course_that_cannot_fit_says_why_on_a_phone(
    site: Site, new_page: Callable[..., Any]
) -> None:
    _template(site)
    page = new_page(width=360, locale="en-US")
    page.goto(f"{site.base}/book/clinic-course/course/induction")
    page.wait_for_url(re.compile(r"tz="))
    page.get_by_role("heading", name="Book your course: Induction", level=1).wait_for()
    assert_accessible(page)
    page.get_by_text("Choose the days and times you can come").click()
    for day in ("Monday", "Wednesday", "Friday", "Saturday", "Sunday"):
        page.get_by_label(day, exact=True).uncheck()
    # Every part of the day is ticked at first (any time): leave the afternoon alone.
    expect(page.get_by_label("Afternoon (starting 12:00 to 16:59)")).to_be_checked()
    page.get_by_label("Morning (starting before 12:00)").uncheck()
    page.get_by_label("Evening (starting 17:00 or later)").uncheck()
    no_horizontal_scroll(page)
    page.get_by_role("button", name="Show a schedule for these times").click()
    page.wait_for_url(re.compile("time=afternoon"))
    expect(page.get_by_role("heading", name="Session 6 of 6", exact=True)).to_be_visible()
    whens = page.locator("li.session .when").all_inner_texts()
    assert len(whens) == 6
    for when in whens:
        assert when.startswith(("Tuesday", "Thursday")), when
        assert "PM" in when, when
    expect(page.get_by_label("Tuesday", exact=True)).to_be_checked()
    expect(page.get_by_label("Monday", exact=True)).not_to_be_checked()
    assert_accessible(page)
    no_horizontal_scroll(page)
    shoot(page, "course-en-4-wishes")
    # Adjusting one session keeps the days and times.
    last = page.locator("#session-6")
    last.get_by_text("Choose another time for this session").click()
    last.locator("a.alt").first.click()
    page.wait_for_url(re.compile("#session-6"))
    expect(page.locator("#session-6 .when")).to_contain_text(re.compile(r"^(Tuesday|Thursday).*PM$"))
    assert "time=afternoon" in page.url
    assert_accessible(page)

    # No day at all: the error summary names the field and leads to it.
    for day in ("Tuesday", "Thursday"):
        page.get_by_label(day, exact=True).uncheck()
    page.get_by_role("button", name="Show a schedule for these times").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("Days you can come: choose at least one day")
    assert_accessible(page)

    # Evenings only: nobody works then; the page says which rule blocks and what to try, and books nothing.
    page.get_by_label("Wednesday", exact=True).check()
    page.get_by_label("Afternoon (starting 12:00 to 16:59)").uncheck()
    page.get_by_label("Evening (starting 17:00 or later)").check()
    page.get_by_role("button", name="Show a schedule for these times").click()
    alert = page.get_by_role("alert").filter(has_text="We could not fit every session")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Try more days of the week or another time of day.")
    expect(page.get_by_role("button", name=re.compile("Book all"))).to_have_count(0)
    assert_accessible(page)
    no_horizontal_scroll(page)
    shoot(page, "course-en-5-blocked")
