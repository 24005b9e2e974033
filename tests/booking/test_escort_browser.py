"""Issue 19 in Debian's Chromium at 360 px: giving the escort while booking an infusion, then changing it.

Every page passes axe and the id and reference check (tests/support/browser.py) and does not scroll sideways.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import time
from typing import Any

import pytest
from flask import Flask

from services.booking import create_app
from services.booking.config import BookingConfig
from shared.config import load
from tests.booking.factories import make_setup
from tests.booking.test_pages_browser import Site, new_page
from tests.support.browser import assert_accessible, no_horizontal_scroll
from tests.support.http import serve
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

__all__ = ["new_page"]  # the fixture, shared with the booking pages' first browser tests


@pytest.fixture
def site(make_database_url: Callable[[str, str], str], redis_server: RedisServer) -> Iterator[Site]:
    """A clinic whose in-clinic infusion requires an escort, open 08:00-20:00 New York time every day."""
    config = load(
        BookingConfig,
        environ={},
        database_url=make_database_url("booking", "postgresql"),
        redis_url=redis_server.url,
        log_format="text",
        booking_rate_limit="600 per minute",
    )
    app: Flask = create_app(config)
    setup = make_setup(
        app,
        slug="infusion",
        name="Infusion session",
        mode="in_person",
        location="1 Main Street, Brooklyn",
        reminder_protocol="infusion-session",
        weekdays=tuple(range(7)),
        hours=(time(8), time(20)),
        min_notice_minutes=60,
        recovery_minutes=45,
        requires_escort=True,
    )
    with serve(app) as base:
        yield Site(app, base, setup)
    app.extensions["db"].dispose()


def _checked(page: Any) -> None:
    assert_accessible(page)
    no_horizontal_scroll(page)


def test_an_escort_given_while_booking_on_a_phone_then_changed(
    site: Site, new_page: Callable[..., Any]
) -> None:
    page = new_page(timezone_id="America/New_York", width=360)
    page.goto(f"{site.base}/book/clinic-infusion/infusion/{site.setup.provider_id}")
    _checked(page)
    page.locator("a.day").nth(1).click()
    page.wait_for_url(re.compile("#times$"))
    _checked(page)
    page.locator("a.time").first.click()
    page.get_by_role("heading", name="Your details").wait_for()
    expect_legend = page.get_by_role("group", name="Who is taking you home?")
    assert "must not drive" in expect_legend.inner_text()
    _checked(page)
    page.get_by_label("Full name").fill("Jordan Example")
    page.get_by_label("Email address").fill("jordan@example.com")
    page.get_by_label("Their first name").fill("Sam")
    page.get_by_label("Their mobile number").fill("+1 415 555 2672")
    page.get_by_role("button", name=re.compile("^Book")).click()
    page.locator("#error-summary").wait_for()
    assert "confirm they agreed to be contacted" in page.locator("#escort-agreed-error").inner_text()
    assert page.get_by_label("Their first name").input_value() == "Sam"
    _checked(page)
    assert site.api("GET", "/api/v1/bookings").json()["total"] == 0

    page.get_by_label("They agreed to take me home and to be contacted by text message").check()
    page.get_by_role("button", name=re.compile("^Book")).click()
    page.get_by_role("heading", name="You're booked").wait_for()
    section = page.get_by_role("region", name="Who is taking you home").inner_text()
    assert "Sam picks you up at" in section
    assert "We ask them by text to confirm." in section
    _checked(page)

    page.get_by_role("link", name="Change who is taking you home").click()
    page.get_by_role("heading", name="Who is taking you home").wait_for()
    assert page.get_by_label("Their first name").input_value() == "Sam"
    _checked(page)
    page.get_by_label("Their first name").fill("Riley")
    page.get_by_label("Their mobile number").fill("+1 415 555 2673")
    page.get_by_label("They agreed to take me home and to be contacted by text message").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("We have saved who is taking you home").wait_for()
    assert "Riley picks you up at" in page.get_by_role("region", name="Who is taking you home").inner_text()
    _checked(page)
    booking = site.api("GET", "/api/v1/bookings").json()["items"][0]
    assert (booking["escort"]["first_name"], booking["escort"]["phone"]) == ("Riley", "+14155552673")
    assert booking["version"] == 1
