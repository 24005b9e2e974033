"""End to end in Debian's Chromium: the booking pages served over real HTTP on PostgreSQL and Redis.

Screenshots of every page at 360 px and 1280 px go to artifacts/screenshots/ (kept out of git).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from icalendar import Calendar
from playwright.sync_api import expect

from services.booking import create_app, invitations
from services.booking.config import BookingConfig
from services.booking.relay import relay_once
from services.notify import create_app as create_notify_app
from shared.config import load
from shared.db import get_db
from shared.timeutil import utcnow
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup
from tests.notify.conftest import notify_config, work
from tests.support.browser import EMAIL, assert_accessible, no_horizontal_scroll, record_loads, unchecked
from tests.support.http import serve
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
LONDON = "Europe/London"
PATIENT = {"name": "Sam Traveller", "phone": "+44 7911 123456", "email": "sam.traveller@example.com"}
PRIVATE = ("Sam", "Traveller", "traveller", "7911", "123456", "example.com", "depression")


@dataclasses.dataclass
class Site:
    app: Flask
    base: str
    setup: Any

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.base + path, headers=STAFF, timeout=10, **kwargs)


@pytest.fixture
def site(
    make_database_url: Callable[[str, str], str], redis_server: RedisServer, redis_client: Any
) -> Iterator[Site]:
    """The booking service on PostgreSQL, open 08:00-20:00 New York time every day, served on a real port."""
    config = load(
        BookingConfig,
        environ={},
        database_url=make_database_url("booking", "postgresql"),
        redis_url=redis_server.url,
        log_format="text",
        booking_rate_limit="600 per minute",
    )
    app = create_app(config)
    from datetime import time

    setup = make_setup(
        app,
        weekdays=tuple(range(7)),
        hours=(time(8), time(20)),
        asks_intake=True,
        change_cutoff_hours=1,
        description="A first conversation by video.",
        # Without notice the first time offered can start seconds after the page shows it, and be gone by the
        # time the test (screenshots, accessibility checks) posts the form: an hour keeps every hour of the day
        # alike.
        min_notice_minutes=60,
    )
    with serve(app) as base:
        yield Site(app, base, setup)
    app.extensions["db"].dispose()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open pages in fresh contexts (a patient's phone in London unless told otherwise); every page they load
    must have been checked with axe by the end of the test."""
    contexts: list[Any] = []
    loaded: list[str] = []

    def make(timezone_id: str = LONDON, width: int = 360, locale: str = "en-US") -> Any:
        context = browser.new_context(
            timezone_id=timezone_id,
            locale=locale,  # the browser's language: its Accept-Language header and navigator.language
            viewport={"width": width, "height": 780},
            accept_downloads=True,
            # Only so the test can inject axe-core; the pages' CSP itself is checked in test_pages.py.
            bypass_csp=True,
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        record_loads(page, loaded)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not unchecked(loaded), f"pages the test opened but never checked with axe: {unchecked(loaded)}"


def shoot(page: Any, name: str) -> None:
    """Check the page with axe and save it, at phone and at desktop width (layout changes what axe sees)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for width in (360, 1280):
        page.set_viewport_size({"width": width, "height": 780})
        assert_accessible(page)
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size(size)


def outbox_texts(
    page: Any,
    site: Site,
    make_database_url: Callable[[str, str], str],
    redis_url: str,
    shot: str | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Relay the booking's event to a notify worker (console senders) and read, by recipient, each message it
    recorded on notify's outbox page (and the ``lang`` of each email's HTML part); every page passes axe."""
    notify = create_notify_app(
        notify_config(make_database_url("notify", "postgresql"), redis_url, booking_public_url=site.base)
    )
    texts: dict[str, str] = {}
    html_langs: list[str] = []
    try:
        with site.app.app_context():
            assert relay_once(db=get_db(), redis=site.app.extensions["redis"]) == 1
        work(notify)
        with serve(notify) as notify_base:
            page.goto(f"{notify_base}/outbox")
            if shot:
                shoot(page, shot)
            else:
                assert_accessible(page)
            rows = {row.locator("td").nth(3).inner_text(): row for row in page.locator("tbody tr").all()}
            for recipient, row in rows.items():
                row.locator("td").first.get_by_role("link").click()
                page.get_by_role("heading", name=re.compile(r"^Message \d+$")).wait_for()
                assert_accessible(page)
                texts[recipient] = page.locator("main").inner_text()
                framed = [frame.url for frame in page.frames if frame is not page.main_frame]
                for url in framed:  # the email's HTML part, as the patient's mail app shows it
                    page.goto(url)
                    assert_accessible(page, EMAIL)
                    html_langs.append(page.locator("html").get_attribute("lang") or "")
                    page.go_back()
                page.go_back()
    finally:
        notify.extensions["db"].dispose()
    return texts, html_langs


def test_book_a_video_consultation_from_another_time_zone(
    site: Site,
    new_page: Callable[..., Any],
    make_database_url: Callable[[str, str], str],
    redis_server: RedisServer,
) -> None:
    page = new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{site.base}/book/clinic-consult")
    expect(page.get_by_role("heading", name="What would you like to book?")).to_be_visible()
    no_horizontal_scroll(page)
    shoot(page, "1-appointment-type")
    page.get_by_role("link", name="Consultation").click()

    # One provider: straight to the times, which the browser's zone (London) re-renders.
    page.wait_for_url(re.compile(r"tz=Europe%2FLondon|tz=Europe/London"))
    expect(page.get_by_text("London time (Europe/London").first).to_be_visible()
    expect(page.get_by_text("This is your device's time zone.")).to_be_visible()
    expect(page.get_by_text("Dr. Test works in New York time (America/New_York")).to_be_visible()
    no_horizontal_scroll(page)
    shoot(page, "2-choose-time")

    times = page.locator("a.time")
    assert times.count() > 0
    chosen = times.first.inner_text()
    day_heading = page.locator("#times-title").inner_text()
    times.first.click()

    page.get_by_role("heading", name="Your details").wait_for()
    assert chosen in page.locator(".summary-box .when").inner_text()
    assert "for Dr. Test" in page.locator(".summary-box").inner_text()
    page.get_by_label("Full name").fill(PATIENT["name"])
    page.get_by_label("Mobile number").fill(PATIENT["phone"])
    page.get_by_label("Email address").fill(PATIENT["email"])
    page.get_by_label("Send me text messages about this appointment").check()
    page.get_by_label("Depression").check()
    page.get_by_label("Anxiety").check()
    page.get_by_label("Treatments you have already tried").fill("Two antidepressants")
    no_horizontal_scroll(page)
    shoot(page, "3-details")
    page.get_by_role("button", name=re.compile("^Book")).click()

    page.get_by_role("heading", name="You're booked").wait_for()
    when = page.locator("dl.summary .when").inner_text()
    assert chosen in when
    assert day_heading.removeprefix("Times on ").split()[1] in when  # the same day of the month
    assert "London time (Europe/London" in page.locator("dl.summary").inner_text()
    expect(page.get_by_text("Your personal video link is sent to you before the appointment")).to_be_visible()
    assert (
        page.get_by_role("link", name="join the video call")
        .get_attribute("href")
        .startswith("http://127.0.0.1:8003/join/")
    )
    no_horizontal_scroll(page)
    shoot(page, "4-confirmation")

    join_url = page.get_by_role("link", name="join the video call").get_attribute("href")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Apple or other (.ics)").click()
    calendar = Calendar.from_ical(Path(download_info.value.path()).read_bytes())
    (event,) = calendar.events
    assert calendar["METHOD"] == "PUBLISH"
    assert str(event["SUMMARY"]) == "Consultation, Clinic"
    # A video visit's entry carries the patient's join link, in the patient's zone, with a reminder an hour ahead.
    assert str(event["LOCATION"]) == join_url
    assert f"Join the video call: {join_url}" in str(event["DESCRIPTION"])
    assert event["DTSTART"].params["TZID"] == LONDON
    (alarm,) = event.walk("VALARM")
    assert alarm["TRIGGER"].dt == -timedelta(hours=1)
    google = parse_qs(urlsplit(page.get_by_role("link", name="Google Calendar").get_attribute("href")).query)
    assert google["text"] == ["Consultation, Clinic"]
    assert google["ctz"] == [LONDON]
    assert join_url in google["details"][0]
    outlook = urlsplit(page.get_by_role("link", name="Outlook.com").get_attribute("href"))
    assert outlook.netloc == "outlook.live.com"
    assert parse_qs(outlook.query)["location"] == [join_url]
    assert (
        page.get_by_role("link", name="Office 365")
        .get_attribute("href")
        .startswith("https://outlook.office.com/")
    )
    assert "depression" not in calendar.to_ical().decode().lower()

    # No patient detail ever travelled in a URL.
    for url in requested:
        for private in PRIVATE:
            assert private not in url, url
    bookings = site.api("GET", "/api/v1/bookings").json()["items"]
    assert len(bookings) == 1
    assert bookings[0]["patient"]["time_zone"] == LONDON
    assert bookings[0]["patient"]["phone"] == "+447911123456"
    assert bookings[0]["intake"]["reasons"] == ["depression", "anxiety"]

    # The confirmation went out by SMS and email: the booking's event goes through the outbox relay and Redis
    # to a notify worker with the console senders, and both messages show on notify's outbox page.
    texts, html_langs = outbox_texts(page, site, make_database_url, redis_server.url, shot="4b-notify-outbox")
    assert html_langs == ["en"]
    assert set(texts) == {"+447911123456", PATIENT["email"]}
    hour = chosen.strip()  # as the confirmation page showed it, in London time
    short = re.search(rf"{re.escape(site.base)}/m/\S+", texts["+447911123456"])
    assert short
    page.goto(short.group(0))
    page.get_by_role("heading", name="Your appointment", exact=True).wait_for()
    assert chosen.strip() in page.locator("dl.summary .when").inner_text()
    assert_accessible(page)
    for recipient, text in texts.items():
        assert hour in text, (recipient, text)
        # SMS carry the short link (one or two segments), email the full one.
        assert f"{site.base}/{'m' if recipient.startswith('+') else 'manage'}/" in text, recipient
        for answer in ("Depression", "depression", "Anxiety", "antidepressants"):
            assert answer not in text, recipient


def test_reschedule_then_cancel_through_the_manage_link(site: Site, new_page: Callable[..., Any]) -> None:
    start = (utcnow() + timedelta(days=2)).astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    slots = site.api(
        "GET",
        "/api/v1/slots",
        params={
            "provider_id": site.setup.provider_id,
            "appointment_type_id": site.setup.type_id,
            "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat(),
        },
    ).json()["slots"]
    created = site.api("POST", "/api/v1/bookings", json=booking_body(site.setup, slots[0]["start"])).json()
    page = new_page()
    page.goto(created["manage_url"].replace("http://127.0.0.1:8001", site.base))
    page.get_by_role("heading", name="Your appointment", exact=True).wait_for()
    before = page.locator("dl.summary .when").inner_text()
    expect(page.get_by_text("You can change or cancel online until")).to_be_visible()
    shoot(page, "5-manage")

    page.get_by_role("link", name="Change time").click()
    page.get_by_role("heading", name="Choose a new time").wait_for()
    shoot(page, "6-reschedule")
    page.locator("a.day").nth(1).click()
    page.wait_for_url(re.compile("day="))
    assert_accessible(page)
    new_time = page.locator("a.time").nth(2)
    label = new_time.inner_text()
    new_time.click()
    page.get_by_role("heading", name="Move your appointment?").wait_for()
    shoot(page, "7-reschedule-confirm")
    page.get_by_role("button", name="Move my appointment").click()
    page.get_by_role("heading", name="Your appointment has moved").wait_for()
    assert_accessible(page)
    after = page.locator("dl.summary .when").inner_text()
    assert label in after
    assert after != before

    page.get_by_role("link", name="Cancel appointment").click()
    page.get_by_role("heading", name="Cancel your appointment?").wait_for()
    shoot(page, "8-cancel")
    page.get_by_role("button", name="Yes, cancel it").click()
    page.get_by_role("heading", name="Your appointment is cancelled").wait_for()
    assert_accessible(page)
    assert page.get_by_role("link", name="Change time").count() == 0
    staff = site.api("GET", f"/api/v1/bookings/{created['id']}").json()
    assert staff["status"] == "cancelled"
    assert staff["version"] == 3


def _open_first_time(page: Any, site: Site) -> str:
    page.goto(f"{site.base}/book/clinic-consult/consult/{site.setup.provider_id}?tz={LONDON}")
    assert_accessible(page)
    page.locator("a.time").first.click()
    page.get_by_role("heading", name="Your details").wait_for()
    assert_accessible(page)
    return str(page.url)


def _fill(page: Any, **values: str) -> None:
    fields = {"name": "Full name", "phone": "Mobile number", "email": "Email address"}
    for key, label in fields.items():
        page.get_by_label(label).fill(values.get(key, PATIENT[key]))
    page.get_by_label("PTSD").check()


def test_the_slot_taken_from_a_second_page_keeps_every_field(
    site: Site, new_page: Callable[..., Any]
) -> None:
    first, second = new_page(), new_page()
    url = _open_first_time(first, site)
    second.goto(url)
    _fill(first)
    _fill(second, name="Quick Other", email="quick@example.org", phone="+1 415 555 2671")
    second.get_by_role("button", name=re.compile("^Book")).click()
    second.get_by_role("heading", name="You're booked").wait_for()
    assert_accessible(second)

    first.get_by_label("Treatments you have already tried").fill("Talking therapy")
    first.get_by_role("button", name=re.compile("^Book")).click()
    alert = first.locator("#slot-taken")
    alert.wait_for()
    assert "was just taken" in alert.inner_text()
    assert "Your details below are kept" in alert.inner_text()
    first.wait_for_function("document.activeElement && document.activeElement.id === 'slot-taken'")
    assert first.get_by_label("Full name").input_value() == PATIENT["name"]
    assert first.get_by_label("Mobile number").input_value() == PATIENT["phone"]
    assert first.get_by_label("Email address").input_value() == PATIENT["email"]
    assert first.get_by_label("PTSD").is_checked()
    assert first.get_by_label("Treatments you have already tried").input_value() == "Talking therapy"
    alternatives = first.locator("fieldset.alternatives input[type=radio]")
    assert alternatives.count() == 3
    shoot(first, "9-slot-taken")
    first.locator("fieldset.alternatives label").nth(1).click()
    first.get_by_role("button", name=re.compile("^Book")).click()
    first.get_by_role("heading", name="You're booked").wait_for()
    assert_accessible(first)
    assert site.api("GET", "/api/v1/bookings").json()["total"] == 2


def test_an_invalid_phone_number_is_explained_at_the_field(site: Site, new_page: Callable[..., Any]) -> None:
    page = new_page()
    _open_first_time(page, site)
    _fill(page, phone="12345")
    page.get_by_role("button", name=re.compile("^Book")).click()
    summary = page.locator("#error-summary")
    summary.wait_for()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'error-summary'")
    phone = page.get_by_label("Mobile number")
    assert phone.get_attribute("aria-invalid") == "true"
    described = phone.get_attribute("aria-describedby").split()
    assert "phone-error" in described
    assert "not a valid phone number" in page.locator("#phone-error").inner_text()
    assert page.get_by_label("Full name").input_value() == PATIENT["name"]
    shoot(page, "10-invalid-phone")
    summary.get_by_role("link").first.click()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'phone'")
    phone.fill(PATIENT["phone"])
    page.get_by_role("button", name=re.compile("^Book")).click()
    page.get_by_role("heading", name="You're booked").wait_for()
    assert_accessible(page)


def test_expired_and_tampered_invitation_links(site: Site, new_page: Callable[..., Any]) -> None:
    invitation = site.api(
        "POST",
        "/api/v1/invitations",
        json={"clinic_id": site.setup.clinic_id, "appointment_type_id": site.setup.type_id},
    ).json()
    url = invitation["url"].replace("http://127.0.0.1:8001", site.base)
    page = new_page()
    page.goto(url)
    page.locator("a.time").first.wait_for()
    shoot(page, "11-invitation")

    tampered = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
    response = page.goto(tampered)
    assert response.status == 404
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    shoot(page, "12-invitation-tampered")

    with site.app.app_context(), get_db().transaction() as session:
        row = invitations.get_invitation(session=session, invitation_id=invitation["id"])
        signer = site.app.extensions["link_signer"]
        expired = signer.sign(
            purpose="invite", subject=str(row.id), version=1, expires_at=utcnow() - timedelta(minutes=1)
        )
    response = page.goto(f"{site.base}/invite/{expired}")
    assert response.status == 410
    expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    expect(page.get_by_text("ask for a new one")).to_be_visible()
    shoot(page, "13-invitation-expired")


def _tab_to(page: Any, test: str, limit: int = 80) -> None:
    """Press Tab until the focused element passes the JavaScript predicate ``test`` (on ``el``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return !!({test}); }})()"):
            return
    raise AssertionError(f"never reached {test} with Tab")


def test_booking_with_the_keyboard_alone(site: Site, new_page: Callable[..., Any]) -> None:
    page = new_page(width=1280)
    page.goto(f"{site.base}/book/clinic-consult")
    assert_accessible(page)
    _tab_to(page, "el.classList.contains('skip')")
    _tab_to(page, "el.textContent.trim() === 'Consultation'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("tz=Europe"))
    assert_accessible(page)
    _tab_to(page, "el.classList.contains('time')")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Your details").wait_for()
    assert_accessible(page)
    _tab_to(page, "el.id === 'name'")
    page.keyboard.type(PATIENT["name"])
    page.keyboard.press("Tab")
    page.keyboard.type(PATIENT["phone"])
    page.keyboard.press("Tab")
    page.keyboard.type(PATIENT["email"])
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # SMS consent
    _tab_to(page, "el.id === 'reasons-anxiety'")
    page.keyboard.press("Space")
    _tab_to(page, "el.type === 'submit'")
    # The focused control is visibly outlined.
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="You're booked").wait_for()
    assert_accessible(page)
    booking = site.api("GET", "/api/v1/bookings").json()["items"][0]
    assert booking["patient"]["sms_consent"] is True
    assert booking["intake"]["reasons"] == ["anxiety"]
