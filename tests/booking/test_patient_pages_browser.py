"""Issue 17 in Debian's Chromium, at 360 px and 1280 px: what a patient on a phone meets on the booking pages.

Times on screen after a day is tapped, in-clinic times in the clinic's zone, words true at the moment they are
read, phone optional without texts, the preparation on the confirmation. Every page passes axe and the id and
reference check (tests/support/browser.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from icalendar import Calendar
from playwright.sync_api import expect

from services.booking import create_app
from services.booking.config import BookingConfig
from shared.config import load
from shared.timeutil import utcnow
from tests.booking.conftest import STAFF
from tests.booking.factories import Setup, booking_body, make_setup
from tests.booking.test_pages_browser import Site, new_page, shoot
from tests.support.browser import assert_accessible, no_horizontal_scroll
from tests.support.http import serve
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

__all__ = ["new_page"]  # the fixture, shared with the booking pages' first browser tests

LOS_ANGELES = "America/Los_Angeles"
WIDTHS = (360, 1280)


@pytest.fixture
def clinic(
    make_database_url: Callable[[str, str], str], redis_server: RedisServer
) -> Iterator[tuple[Site, Setup]]:
    """A Brooklyn clinic (New York time) with an in-clinic infusion and a video follow-up open all day."""
    config = load(
        BookingConfig,
        environ={},
        database_url=make_database_url("booking", "postgresql"),
        redis_url=redis_server.url,
        log_format="text",
        booking_rate_limit="600 per minute",
    )
    app: Flask = create_app(config)
    infusion = make_setup(
        app,
        slug="infusion",
        name="Infusion session",
        mode="in_person",
        location="1 Main Street, Brooklyn",
        reminder_protocol="infusion-session",
        weekdays=tuple(range(7)),
        hours=(time(8), time(20)),
        min_notice_minutes=60,
        change_cutoff_hours=48,
    )
    video = make_setup(
        app,
        slug="follow",
        name="Follow-up",
        duration_minutes=15,
        slot_interval_minutes=5,
        reminder_protocol="follow-up",
        weekdays=tuple(range(7)),
        hours=(time(0), time(23, 59)),
    )
    with serve(app) as base:
        yield Site(app, base, infusion), video
    app.extensions["db"].dispose()


def _in_view(page: Any, selector: str) -> bool:
    return bool(
        page.evaluate(
            """(selector) => { const r = document.querySelector(selector).getBoundingClientRect();
                 return r.top >= 0 && r.bottom <= window.innerHeight; }""",
            selector,
        )
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_a_tapped_day_shows_its_times_on_screen(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], width: int
) -> None:
    site, _ = clinic
    page = new_page(timezone_id=LOS_ANGELES, width=width)
    page.goto(f"{site.base}/book/clinic-infusion/infusion/{site.setup.provider_id}")
    page.wait_for_url(re.compile("tz=America"))
    # One type and one provider through the public link: the provider step is skipped and not counted.
    assert page.locator(".steps").inner_text() == "Step 2 of 3"
    assert_accessible(page)
    page.locator("a.day").nth(2).click()
    page.wait_for_url(re.compile("#times$"))
    assert _in_view(page, "#times-title")
    assert _in_view(page, "a.time")
    assert_accessible(page)
    no_horizontal_scroll(page)


def test_an_in_clinic_visit_booked_from_los_angeles_by_email_alone(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any]
) -> None:
    site, _ = clinic
    page = new_page(timezone_id=LOS_ANGELES)
    page.goto(f"{site.base}/book/clinic-infusion")
    assert page.locator(".steps").inner_text() == "Step 1 of 3"
    assert_accessible(page)
    page.get_by_role("link", name="Infusion session").click()
    page.wait_for_url(re.compile("tz=America"))
    zone = page.locator(".zone").inner_text()
    assert "times are the clinic's local time, New York time (America/New_York" in zone
    assert "Los Angeles time (America/Los_Angeles" in zone
    assert "is 3 hours behind" in zone
    assert_accessible(page)
    # The clinic opens at 8 AM its time: no time before it is offered (in Los Angeles time that would be 5 AM).
    page.locator("a.day").nth(1).click()
    assert page.locator("a.time").first.inner_text() == "8:00 AM"
    shoot(page, "17-in-clinic-times")
    page.locator("a.time").first.click()

    page.get_by_role("heading", name="Your details").wait_for()
    assert page.locator(".steps").inner_text() == "Step 3 of 3"
    box = page.locator(".summary-box").inner_text()
    assert "8:00 AM" in box
    assert "The clinic's local time: New York time" in box
    assert "5:00 AM in your time zone (Los Angeles time" in box
    assert "video" not in page.locator("#phone-hint").inner_text()
    assert "video" not in page.locator("#sms-consent-hint").inner_text()
    expect(page.get_by_text("Mobile number (optional)")).to_be_visible()
    page.get_by_label("Full name").fill("Sam Traveller")
    page.get_by_label("Email address").fill("sam@example.com")
    shoot(page, "17-in-clinic-details")
    page.get_by_role("button", name=re.compile("^Book")).click()

    page.get_by_role("heading", name="You're booked").wait_for()
    when = page.locator("dl.summary").inner_text()
    assert "8:00 AM" in when
    assert "That is" in when
    assert "5:00 AM in your time zone" in when
    checklist = page.get_by_role("region", name="How to prepare")
    assert "Arrange a support person to drive you home." in checklist.inner_text()
    shoot(page, "17-in-clinic-confirmation")
    # The calendar entry is in the clinic's time too, with the address and no video link.
    with page.expect_download() as download:
        page.get_by_role("link", name="Apple or other (.ics)").click()
    (event,) = Calendar.from_ical(Path(download.value.path()).read_bytes()).events
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert event["DTSTART"].dt.hour == 8
    assert str(event["LOCATION"]) == "1 Main Street, Brooklyn"
    assert event.walk("VALARM")
    google = parse_qs(urlsplit(page.get_by_role("link", name="Google Calendar").get_attribute("href")).query)
    assert google["ctz"] == ["America/New_York"]
    assert google["location"] == ["1 Main Street, Brooklyn"]
    booking = site.api("GET", "/api/v1/bookings").json()["items"][0]
    assert booking["patient"]["phone"] is None
    assert booking["patient"]["sms_consent"] is False


def test_texts_without_a_phone_are_explained_at_the_phone_field(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any]
) -> None:
    site, _ = clinic
    page = new_page(timezone_id="America/New_York")
    page.goto(f"{site.base}/book/clinic-infusion/infusion/{site.setup.provider_id}")
    assert_accessible(page)
    page.locator("a.time").first.click()
    page.get_by_role("heading", name="Your details").wait_for()
    assert_accessible(page)
    page.get_by_label("Full name").fill("Sam Traveller")
    page.get_by_label("Email address").fill("sam@example.com")
    page.get_by_label("Send me text messages about this appointment").check()
    page.get_by_role("button", name=re.compile("^Book")).click()
    page.locator("#error-summary").wait_for()
    assert "enter a mobile number for text messages" in page.locator("#phone-error").inner_text()
    shoot(page, "17-texts-need-a-phone")
    assert site.api("GET", "/api/v1/bookings").json()["total"] == 0


def _first_slot(site: Site, setup: Setup, after: timedelta, before: timedelta) -> str:
    now = utcnow()
    slots = requests.get(
        f"{site.base}/api/v1/slots",
        params={
            "provider_id": setup.provider_id,
            "appointment_type_id": setup.type_id,
            "start": (now + after).isoformat(),
            "end": (now + before).isoformat(),
        },
        headers=STAFF,
        timeout=10,
    ).json()["slots"]
    return str(slots[0]["start"])


@pytest.mark.parametrize(
    ("lead", "words"),
    [
        (timedelta(minutes=30), "on its way to you now"),
        (timedelta(hours=3), "is sent to you before the appointment"),
    ],
)
def test_the_video_link_wording_is_true_when_the_page_is_read(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], lead: timedelta, words: str
) -> None:
    site, video = clinic
    start = _first_slot(site, video, lead - timedelta(minutes=10), lead + timedelta(minutes=10))
    created = site.api("POST", "/api/v1/bookings", json=booking_body(video, start)).json()
    page = new_page()
    page.goto(created["manage_url"].replace("http://127.0.0.1:8001", site.base))
    page.get_by_role("heading", name="Your appointment", exact=True).wait_for()
    expect(page.get_by_text(re.compile(words))).to_be_visible()
    assert page.get_by_role("region", name="How to prepare").count() == 0
    shoot(page, f"17-video-manage-{int(lead.total_seconds() // 60)}min")


def test_an_old_link_says_what_happened_and_a_cancelled_one_offers_booking_again(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any]
) -> None:
    site, _ = clinic
    start = _first_slot(site, site.setup, timedelta(days=3), timedelta(days=4))
    created = site.api("POST", "/api/v1/bookings", json=booking_body(site.setup, start)).json()
    first = created["manage_url"].replace("http://127.0.0.1:8001", site.base)
    token = first.rsplit("/", 1)[1]
    later = _first_slot(site, site.setup, timedelta(days=5), timedelta(days=6))
    moved = requests.post(f"{site.base}/api/v1/manage/{token}/reschedule", json={"start": later}, timeout=10)
    assert moved.status_code == 200, moved.text
    page = new_page()
    assert page.goto(first).status == 409
    expect(page.get_by_role("heading", name="This appointment has changed")).to_be_visible()
    assert page.get_by_role("link", name="Book again").count() == 0
    shoot(page, "17-old-link-moved")

    current = moved.json()["manage_url"].replace("http://127.0.0.1:8001", site.base)
    page.goto(current)
    page.get_by_role("link", name="Cancel appointment").click()
    page.get_by_role("heading", name="Cancel your appointment?").wait_for()
    assert_accessible(page)
    page.get_by_role("button", name="Yes, cancel it").click()
    page.get_by_role("heading", name="Your appointment is cancelled").wait_for()
    assert_accessible(page)
    expect(page.get_by_role("link", name="Book again")).to_be_visible()
    # The link the patient just used (the version before the cancel) says the same and offers booking again.
    assert page.goto(current).status == 409
    expect(page.get_by_role("heading", name="This appointment was cancelled")).to_be_visible()
    shoot(page, "17-old-link-cancelled")
    page.get_by_role("link", name="Book again").click()
    page.wait_for_url(re.compile("/book/clinic-infusion/infusion"))
    page.get_by_role("heading", name="Choose a time").wait_for()
    assert_accessible(page)


SEND_AGAIN = {
    "en": ("en-US", "Send my current link again", "If we have a way to reach you, a new link is on its way."),
    "es": (
        "es-MX",
        "Enviarme de nuevo el enlace vigente",
        "Si tenemos cómo comunicarnos con usted, le llegará un enlace nuevo.",
    ),
}


@pytest.mark.parametrize("language", sorted(SEND_AGAIN))
def test_an_old_link_sends_the_current_one_again_and_says_nothing_of_the_booking(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], language: str
) -> None:
    site, _ = clinic
    locale, button, answer = SEND_AGAIN[language]
    start = _first_slot(site, site.setup, timedelta(days=3), timedelta(days=4))
    created = site.api("POST", "/api/v1/bookings", json=booking_body(site.setup, start)).json()
    old = created["manage_url"].replace("http://127.0.0.1:8001", site.base)
    later = _first_slot(site, site.setup, timedelta(days=5), timedelta(days=6))
    moved = site.api("POST", f"/api/v1/bookings/{created['id']}/reschedule", json={"start": later})
    assert moved.status_code == 200, moved.text
    for width in WIDTHS:
        page = new_page(width=width, locale=locale)
        assert page.goto(old).status == 409
        assert_accessible(page)
        no_horizontal_scroll(page)
        if width == WIDTHS[0]:
            shoot(page, f"17-old-link-send-again-{language}")
        page.get_by_role("button", name=button).click()
        page.wait_for_url(re.compile("/link-sent$"))
        expect(page.get_by_role("status")).to_have_text(answer)
        assert page.locator("html").get_attribute("lang") == language
        assert_accessible(page)
        no_horizontal_scroll(page)
        shown = page.locator("main").inner_text()
        for secret in ("Jordan", "jordan@", "+1415", "Dr. Test", start[11:16], later[11:16]):
            assert secret not in shown
    shoot(page, f"17-link-again-{language}")
    events = site.api("GET", f"/api/v1/bookings/{created['id']}/events").json()
    assert [e["type"] for e in events].count("booking.link_requested") == len(WIDTHS)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_zone_chooser_puts_likely_zones_first_and_is_searchable(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], width: int
) -> None:
    site, video = clinic
    page = new_page(timezone_id="Europe/London", width=width)
    page.goto(f"{site.base}/book/clinic-follow/follow/{video.provider_id}")
    page.wait_for_url(re.compile("tz=Europe"))
    assert_accessible(page)
    page.get_by_text("Change time zone").click()
    groups = page.locator("#tz optgroup")
    assert groups.first.get_attribute("label") == "Likely time zones"
    likely = groups.first.locator("option").evaluate_all("(options) => options.map((o) => o.value)")
    assert likely[:3] == ["Europe/London", "America/New_York", "America/Chicago"]
    assert "Europe" in groups.evaluate_all("(gs) => gs.map((g) => g.label)")
    assert_accessible(page)
    page.get_by_label("Search time zones").fill("tokyo")
    shown = page.locator("#tz option:not([hidden])").evaluate_all("(options) => options.map((o) => o.value)")
    assert shown == ["Asia/Tokyo"]
    assert page.get_by_label("Your time zone").input_value() == "Asia/Tokyo"
    shoot(page, "17-zone-search")
    page.get_by_role("button", name="Show times in this zone").click()
    page.wait_for_url(re.compile("tz=Asia%2FTokyo|tz=Asia/Tokyo"))
    assert "Tokyo time (Asia/Tokyo" in page.locator(".zone").inner_text()
    assert_accessible(page)
