"""Issue 17 in both languages, in Debian's Chromium at 360 px and 1280 px: the cells the first browser tests
covered in English only (the in-clinic visit, the same-day warning, an expired link).

Expected words come from the compiled catalogue (a Spanish word equal to its English msgid fails as untranslated),
so a test reads the same in each language. The coverage matrix is in docs/booking-pages.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from babel.support import Translations
from playwright.sync_api import expect

from shared import links
from shared.timeutil import day_bounds_utc, local_date, utcnow
from tests.booking.factories import Setup, booking_body
from tests.booking.test_pages_browser import Site, shoot
from tests.booking.test_patient_pages_browser import LOS_ANGELES, WIDTHS, _in_view, clinic, new_page
from tests.support.browser import assert_accessible, no_horizontal_scroll

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

__all__ = ["clinic", "new_page"]  # the fixtures, shared with the first browser tests

CATALOGUES = Path(__file__).resolve().parents[2] / "services" / "booking" / "pages" / "translations"
LOCALES = {"en": "en-US", "es": "es-MX"}
LANGUAGES = sorted(LOCALES)
NEW_YORK = "America/New_York"
API_BASE = "http://127.0.0.1:8001"  # the public URL the API's links carry; the tests' server is elsewhere


def _t(language: str, message: str, **values: Any) -> str:
    """``message`` as the pages say it in ``language``, markup left out."""
    said: str = Translations.load(str(CATALOGUES), [language]).gettext(message)
    if language != "en":
        assert said != message, f"untranslated in {language}: {message}"
    said = said % values if values else said
    return re.sub(r"<[^>]+>", "", said)


def _hours_behind(language: str, hours: int) -> str:
    said: str = Translations.load(str(CATALOGUES), [language]).ngettext(
        "is %(num)s hour behind", "is %(num)s hours behind", hours
    )
    return said % {"num": hours}


def _lang(page: Any) -> str:
    return str(page.locator("html").get_attribute("lang"))


def _cells() -> list[tuple[str, int]]:
    return [(language, width) for language in LANGUAGES for width in WIDTHS]


@pytest.mark.parametrize(("language", "width"), _cells())
def test_an_in_clinic_visit_from_los_angeles(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], language: str, width: int
) -> None:
    """Points 1, 2, 3, 4, 6, 7 and 9: times on screen, the clinic's clock, the step counter, phone optional,
    the preparation and the calendar choices."""
    site, _ = clinic
    page = new_page(timezone_id=LOS_ANGELES, width=width, locale=LOCALES[language])
    page.goto(f"{site.base}/book/clinic-infusion/infusion/{site.setup.provider_id}")
    page.wait_for_url(re.compile("tz=America"))
    assert _lang(page) == language
    assert page.locator(".steps").inner_text() == _t(language, "Step %(n)s of %(total)s", n=2, total=3)
    zone = page.locator(".zone").inner_text()
    assert "(America/New_York" in zone
    assert "(America/Los_Angeles" in zone
    assert _hours_behind(language, 3) in zone
    assert_accessible(page)
    page.locator("a.day").nth(1).click()
    page.wait_for_url(re.compile("#times$"))
    assert _in_view(page, "#times-title")
    assert _in_view(page, "a.time")
    # 8 AM is the clinic's opening in its own time (5 AM in Los Angeles would be the patient's).
    assert page.locator("a.time").first.inner_text().startswith("8:00")
    assert_accessible(page)
    no_horizontal_scroll(page)
    if width == WIDTHS[0]:
        shoot(page, f"17-in-clinic-times-{language}")
    page.locator("a.time").first.click()

    page.get_by_role("heading", name=_t(language, "Your details")).wait_for()
    assert page.locator(".steps").inner_text() == _t(language, "Step %(n)s of %(total)s", n=3, total=3)
    expect(page.locator("label[for=phone] .optional")).to_have_text(_t(language, "(optional)"))
    page.get_by_label(_t(language, "Full name")).fill("Sam Traveller")
    page.get_by_label(_t(language, "Email address")).fill("sam@example.com")
    assert_accessible(page)
    no_horizontal_scroll(page)
    book = _t(language, "Book %(kind)s", kind="\x00").split("\x00")[0].strip()
    page.get_by_role("button", name=re.compile("^" + re.escape(book))).click()

    page.get_by_role("heading", name=_t(language, "You're booked")).wait_for()
    assert _lang(page) == language
    assert "8:00" in page.locator("dl.summary").inner_text()
    checklist = page.get_by_role("region", name=_t(language, "How to prepare"))
    expect(checklist).to_contain_text(
        _t(
            language,
            "<strong>Arrange a support person to drive you home.</strong> You must not drive for the rest of the "
            "day.",
        )
    )
    for name in ("Google Calendar", "Outlook.com", "Office 365", _t(language, "Apple or other (.ics)")):
        expect(page.get_by_role("link", name=name)).to_be_visible()
    google = parse_qs(urlsplit(page.get_by_role("link", name="Google Calendar").get_attribute("href")).query)
    assert google["ctz"] == [NEW_YORK]
    assert_accessible(page)
    no_horizontal_scroll(page)
    if width == WIDTHS[0]:
        shoot(page, f"17-in-clinic-confirmation-{language}")
    (booking,) = site.api("GET", "/api/v1/bookings").json()["items"]
    assert booking["patient"]["phone"] is None
    assert booking["patient"]["language"] == language


def _day_slots(site: Site, setup: Setup, days_ahead: int) -> list[str]:
    """Every start offered on one of the clinic's days (New York), ``days_ahead`` from today."""
    day = local_date(utcnow(), NEW_YORK) + timedelta(days=days_ahead)
    start, end = day_bounds_utc(day, NEW_YORK)
    answer = site.api(
        "GET",
        "/api/v1/slots",
        params={
            "provider_id": setup.provider_id,
            "appointment_type_id": setup.type_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
    )
    assert answer.status_code == 200, answer.text
    return [str(s["start"]) for s in answer.json()["slots"]]


@pytest.mark.parametrize(("language", "width"), _cells())
def test_a_second_visit_on_the_same_day_is_pointed_out_on_both_manage_pages(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], language: str, width: int
) -> None:
    """Point 8: where a type allows two visits a day (``one_per_day`` off), each manage page warns."""
    site, _ = clinic
    slots = _day_slots(site, site.setup, 3)
    morning, evening = slots[0], slots[-1]
    manage_urls = []
    for start in (morning, evening):
        created = site.api(
            "POST", "/api/v1/bookings", json=booking_body(site.setup, start, language=language)
        )
        assert created.status_code == 201, created.text
        manage_urls.append(created.json()["manage_url"].replace(API_BASE, site.base))
    warning = _t(
        language,
        "You have another %(kind)s booked on the same day. If you meant to book only one, cancel the one you "
        "do not need from its own link.",
        kind="infusion session",
    )
    page = new_page(width=width, locale=LOCALES[language])
    for n, url in enumerate(manage_urls):
        page.goto(url)
        page.get_by_role("heading", name=_t(language, "Your appointment"), exact=True).wait_for()
        assert _lang(page) == language
        expect(page.get_by_role("note").filter(has_text=warning)).to_be_visible()
        # Point 9 on the manage page: the type's preparation.
        expect(page.get_by_role("region", name=_t(language, "How to prepare"))).to_be_visible()
        assert_accessible(page)
        no_horizontal_scroll(page)
        if width == WIDTHS[0] and n == 0:
            shoot(page, f"17-same-day-{language}")
    # Once the other is cancelled, the warning goes.
    cancelled = site.api("POST", f"/api/v1/manage/{manage_urls[1].rsplit('/', 1)[1]}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    page.goto(manage_urls[0])
    page.get_by_role("heading", name=_t(language, "Your appointment"), exact=True).wait_for()
    expect(page.get_by_text(warning)).to_have_count(0)
    assert_accessible(page)


def _expired_links(site: Site, booking_id: str) -> tuple[str, str]:
    """A genuine manage link of ``booking_id`` past its life, long and short."""
    past = utcnow() - timedelta(days=2)
    with site.app.app_context():
        signer = site.app.extensions["link_signer"]
        token = signer.sign(purpose=links.MANAGE, subject=booking_id, version=1, expires_at=past)
        code = links.sign_short(
            signer.keys, purpose=links.MANAGE, subject=booking_id, version=1, expires_at=past
        )
    return f"{site.base}/manage/{token}", f"{site.base}/m/{code}"


@pytest.mark.parametrize(("language", "width"), _cells())
def test_an_expired_link_offers_the_current_link_and_booking_again(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], language: str, width: int
) -> None:
    """Point 5 for a link past its life: what happened (nothing more), "send my current link again", "book
    again"; an altered link gets neither."""
    site, _ = clinic
    start = _day_slots(site, site.setup, 3)[0]
    created = site.api("POST", "/api/v1/bookings", json=booking_body(site.setup, start, language=language))
    assert created.status_code == 201, created.text
    booking_id = created.json()["id"]
    long_link, short_link = _expired_links(site, booking_id)
    # The phone's browser speaks English: the page follows the patient's language all the same.
    page = new_page(width=width)
    for url in (short_link, long_link):
        assert page.goto(url).status == 410
        assert _lang(page) == language
        expect(page.get_by_role("heading", name=_t(language, "This link has expired"))).to_be_visible()
        expect(page.get_by_role("button", name=_t(language, "Send my current link again"))).to_be_visible()
        expect(page.get_by_role("link", name=_t(language, "Book again"))).to_be_visible()
        shown = page.locator("main").inner_text()
        for secret in ("Jordan", "jordan@", "Dr. Test", "8:00"):
            assert secret not in shown, secret
        assert_accessible(page)
        no_horizontal_scroll(page)
    if width == WIDTHS[0]:
        shoot(page, f"17-expired-link-{language}")
    page.get_by_role("button", name=_t(language, "Send my current link again")).click()
    page.wait_for_url(re.compile(f"/link-sent\\?lang={language}$"))
    expect(page.get_by_role("status")).to_have_text(
        _t(language, "If we have a way to reach you, a new link is on its way.")
    )
    assert_accessible(page)
    events = site.api("GET", f"/api/v1/bookings/{booking_id}/events").json()
    assert [e["type"] for e in events].count("booking.link_requested") == 1

    page.goto(long_link)
    page.get_by_role("link", name=_t(language, "Book again")).click()
    page.wait_for_url(re.compile("/book/clinic-infusion/infusion"))
    page.get_by_role("heading", name=_t(language, "Choose a time")).wait_for()
    assert_accessible(page)

    altered = long_link[:-2] + ("A" if long_link[-2] != "A" else "B") + long_link[-1]
    assert page.goto(altered).status == 404
    expect(page.get_by_role("button")).to_have_count(0)
    assert page.get_by_role("link", name=_t(language, "Book again")).count() == 0
    assert_accessible(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_zone_chooser_in_spanish(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], width: int
) -> None:
    """Point 8's zone chooser, in Spanish (test_patient_pages_browser.py has the English cells)."""
    site, video = clinic
    page = new_page(timezone_id="Europe/London", width=width, locale=LOCALES["es"])
    page.goto(f"{site.base}/book/clinic-follow/follow/{video.provider_id}")
    page.wait_for_url(re.compile("tz=Europe"))
    assert _lang(page) == "es"
    page.get_by_text(_t("es", "Change time zone")).click()
    groups = page.locator("#tz optgroup")
    assert groups.first.get_attribute("label") == _t("es", "Likely time zones")
    page.get_by_label(_t("es", "Search time zones")).fill("tokyo")
    shown = page.locator("#tz option:not([hidden])").evaluate_all("(options) => options.map((o) => o.value)")
    assert shown == ["Asia/Tokyo"]
    assert page.get_by_label(_t("es", "Your time zone")).input_value() == "Asia/Tokyo"
    assert_accessible(page)
    no_horizontal_scroll(page)
    if width == WIDTHS[0]:
        shoot(page, "17-zone-search-es")
    page.get_by_role("button", name=_t("es", "Show times in this zone")).click()
    page.wait_for_url(re.compile("tz=Asia%2FTokyo|tz=Asia/Tokyo"))
    # "hora de Tokyo (Asia/Tokyo, JST)": the label up to the zone's abbreviation.
    tokyo = _t("es", "%(city)s time (%(zone)s)", city="Tokyo", zone="Asia/Tokyo").removesuffix(")")
    expect(page.locator(".zone")).to_contain_text(tokyo)
    assert_accessible(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_video_visit_within_the_hour_says_its_link_is_on_its_way_in_spanish(
    clinic: tuple[Site, Setup], new_page: Callable[..., Any], width: int
) -> None:
    """Point 7's words true at the moment, in Spanish: a video visit 30 minutes away has its link on the way."""
    site, video = clinic
    now = utcnow()
    slots = site.api(
        "GET",
        "/api/v1/slots",
        params={
            "provider_id": video.provider_id,
            "appointment_type_id": video.type_id,
            "start": (now + timedelta(minutes=20)).isoformat(),
            "end": (now + timedelta(minutes=40)).isoformat(),
        },
    ).json()["slots"]
    body = booking_body(video, slots[0]["start"], language="es", sms_consent=False)
    created = site.api("POST", "/api/v1/bookings", json=body)
    assert created.status_code == 201, created.text
    page = new_page(width=width, locale=LOCALES["es"])
    page.goto(created.json()["manage_url"].replace(API_BASE, site.base))
    page.get_by_role("heading", name=_t("es", "Your appointment"), exact=True).wait_for()
    expect(
        page.get_by_text(
            _t(
                "es",
                "Your appointment is less than an hour away, so your personal video link is on its way to you now "
                "by email. It is also below.",
            )
        )
    ).to_be_visible()
    expect(page.get_by_role("region", name=_t("es", "How to prepare"))).to_have_count(0)
    assert_accessible(page)
    no_horizontal_scroll(page)
    if width == WIDTHS[0]:
        shoot(page, "17-video-manage-30min-es")
