"""The join page in a real browser (Debian's Chromium): the local room end to end, and the Twilio page's SDK
served by the consult service itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import expect

from shared.timeutil import utcnow
from tests.consult.conftest import DURATION, artifact_dir, booking_event, booking_id_of, deliver, token_for
from tests.support.browser import assert_accessible
from tests.support.http import serve

# `make run` runs on SQLite; the room logic itself is tested on both backends elsewhere.
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("backend", ["sqlite"])]


class Tab:
    """A page in its own browser context, with its console errors and every URL it requested."""

    def __init__(self, browser: Any, base: str, *, width: int = 900, bypass_csp: bool = False) -> None:
        # bypass_csp only so a test can inject axe-core; the page's own CSP is checked in test_join.py.
        self.context = browser.new_context(viewport={"width": width, "height": 700}, bypass_csp=bypass_csp)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.base = base
        # Nothing may leave the machine: record every request and web socket, and refuse other hosts.
        self.sockets: list[str] = []
        self.page.route("**/*", self._route)
        self.page.route_web_socket(
            lambda url: urlsplit(url).netloc != urlsplit(base).netloc, self._refuse_socket
        )

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).netloc == urlsplit(self.base).netloc:
            route.continue_()
        else:
            route.abort()

    def _refuse_socket(self, socket: Any) -> None:
        self.sockets.append(socket.url)
        socket.close(code=1011, reason="no network in tests")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tabs(browser: Any) -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def _booked(app: Flask, starts_in: timedelta) -> tuple[uuid.UUID, Any]:
    start = utcnow().replace(microsecond=0) + starts_in
    payload = booking_event(start=start)
    deliver(app, payload)
    return booking_id_of(payload), start


def test_patient_and_provider_meet_in_the_local_room(
    app: Flask, redis_client: Any, browser: Any, tabs: list[Tab]
) -> None:
    booking_id, start = _booked(app, timedelta(minutes=5))
    with serve(app) as base:
        patient, provider = Tab(browser, base), Tab(browser, base)
        tabs.extend([patient, provider])
        for tab, who in ((patient, "patient"), (provider, "provider")):
            tab.page.goto(f"{base}/join/{token_for(app, booking_id, participant=who, end=start + DURATION)}")
            expect(tab.page.get_by_role("heading", name="Video consultation")).to_be_visible()
            tab.page.get_by_role("button", name="Join the consultation").click()
            tab.page.wait_for_selector("#room:not([hidden])")

        expect(provider.page.locator("#participants li")).to_have_text(["Patient", "Provider (you)"])
        # The patient's page learns of the provider at its next heartbeat.
        expect(patient.page.locator("#participants li")).to_have_text(
            ["Patient (you)", "Provider"], timeout=15000
        )
        patient.page.screenshot(
            path=str(artifact_dir("screenshots") / "consult-join-local-room.png"), full_page=True
        )

        patient.page.get_by_role("button", name="Leave").click()
        patient.page.wait_for_selector("#left:not([hidden])")
        expect(provider.page.locator("#participants li")).to_have_text(["Provider (you)"], timeout=15000)

        patient.page.get_by_role("button", name="Join again").click()
        expect(provider.page.locator("#participants li")).to_have_count(2, timeout=15000)

    for tab in (patient, provider):
        assert tab.errors == []
        assert all(urlsplit(url).netloc == urlsplit(base).netloc for url in tab.requests)


def test_before_the_window_the_page_says_when_to_come_back(
    app: Flask, redis_client: Any, browser: Any, tabs: list[Tab]
) -> None:
    booking_id, start = _booked(app, timedelta(hours=3))
    with serve(app) as base:
        tab = Tab(browser, base)
        tabs.append(tab)
        response = tab.page.goto(f"{base}/join/{token_for(app, booking_id, end=start + DURATION)}")
        assert response.status == 200
        message = tab.page.locator("#message").inner_text()
        assert "The room opens at" in message
        assert tab.page.get_by_role("button", name="Join the consultation").count() == 0
        tab.page.screenshot(
            path=str(artifact_dir("screenshots") / "consult-join-upcoming.png"), full_page=True
        )
    assert tab.errors == []


def test_the_twilio_page_loads_the_sdk_from_the_consult_service(
    twilio_app: Flask, redis_client: Any, browser: Any, tabs: list[Tab]
) -> None:
    booking_id, start = _booked(twilio_app, timedelta(minutes=5))
    with serve(twilio_app) as base:
        tab = Tab(browser, base)
        tabs.append(tab)
        tab.page.goto(f"{base}/join/{token_for(twilio_app, booking_id, end=start + DURATION)}")
        assert tab.errors == [], tab.errors
        assert tab.page.evaluate("window.Twilio.Video.version") == "2.36.0"
        sdk = [url for url in tab.requests if "twilio-video" in url]
        assert sdk
        assert all(url.startswith(f"{base}/static/vendor/twilio-video.min.js") for url in sdk)

        # Joining asks the service for a token (the room is created at Prism), then the SDK tries to reach
        # Twilio, which this machine cannot: the page must say so and offer Join again.
        tab.page.get_by_role("button", name="Join the consultation").click()
        expect(tab.page.locator("#consult[data-error]")).to_have_count(1, timeout=60000)
        assert tab.page.get_by_role("button", name="Join the consultation").is_enabled()
        message = tab.page.locator("#message").inner_text()
        assert "camera or microphone" in message or "could not connect" in message
        tab.page.screenshot(
            path=str(artifact_dir("screenshots") / "consult-join-twilio-error.png"), full_page=True
        )
    assert any(url.endswith("/access") for url in tab.requests)


@pytest.fixture
def browser_with_fake_media(browser: Any) -> Iterator[Any]:
    """Chromium with a fake camera and microphone, so the SDK gets as far as signalling."""
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    chromium = browser.browser_type.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
    )
    yield chromium
    chromium.close()


def test_with_a_camera_the_sdk_connects_with_our_token_and_reports_a_network_failure(
    twilio_app: Flask, redis_client: Any, browser_with_fake_media: Any, tabs: list[Tab]
) -> None:
    booking_id, start = _booked(twilio_app, timedelta(minutes=5))
    with serve(twilio_app) as base:
        tab = Tab(browser_with_fake_media, base)
        tabs.append(tab)
        tab.page.goto(f"{base}/join/{token_for(twilio_app, booking_id, end=start + DURATION)}")
        tab.page.get_by_role("button", name="Join the consultation").click()
        expect(tab.page.locator("#consult[data-error]")).to_have_count(1, timeout=90000)
        message = tab.page.locator("#message").inner_text()
        tab.page.screenshot(
            path=str(artifact_dir("screenshots") / "consult-join-twilio-offline.png"), full_page=True
        )
    assert "could not connect to the video service" in message
    # The SDK accepted our token and room and tried Twilio's signalling server, which the test refused.
    assert tab.sockets == ["wss://global.vss.twilio.com/signaling"]
    # The SDK logs the refused signalling connection itself; nothing else went wrong on the page.
    assert all("group: signaling" in error for error in tab.errors), tab.errors


def test_every_state_of_the_join_page_is_accessible_on_a_phone(
    app: Flask, redis_client: Any, browser: Any, tabs: list[Tab]
) -> None:
    """Each state the other tests reach, checked here: they keep the page's CSP, which refuses axe's script."""
    soon, soon_start = _booked(app, timedelta(minutes=5))
    later, later_start = _booked(app, timedelta(hours=3))
    with serve(app) as base:
        tab = Tab(browser, base, width=360, bypass_csp=True)
        tabs.append(tab)
        tab.page.goto(f"{base}/join/{token_for(app, later, end=later_start + DURATION)}")
        assert_accessible(tab.page)  # upcoming
        tab.page.goto(f"{base}/join/{token_for(app, soon, end=soon_start + DURATION)}")
        assert_accessible(tab.page)  # open: the lobby
        tab.page.get_by_role("button", name="Join the consultation").click()
        expect(tab.page.locator("#participants li")).to_have_text(["Patient (you)"])
        assert_accessible(tab.page)  # in the room
        tab.page.screenshot(
            path=str(artifact_dir("screenshots") / "consult-join-local-room-360.png"), full_page=True
        )
        tab.page.get_by_role("button", name="Leave").click()
        tab.page.wait_for_selector("#left:not([hidden])")
        assert_accessible(tab.page)  # left
        tab.page.goto(f"{base}/join/not-a-token")
        assert_accessible(tab.page)  # refused
    assert tab.errors == [] or all("404" in error for error in tab.errors)


def test_the_twilio_join_page_is_accessible_before_and_after_a_failed_connection(
    twilio_app: Flask, redis_client: Any, browser: Any, tabs: list[Tab]
) -> None:
    booking_id, start = _booked(twilio_app, timedelta(minutes=5))
    with serve(twilio_app) as base:
        tab = Tab(browser, base, width=360, bypass_csp=True)
        tabs.append(tab)
        tab.page.goto(f"{base}/join/{token_for(twilio_app, booking_id, end=start + DURATION)}")
        assert_accessible(tab.page)  # the lobby that asks for the camera
        tab.page.get_by_role("button", name="Join the consultation").click()
        expect(tab.page.locator("#consult[data-error]")).to_have_count(1, timeout=60000)
        assert_accessible(tab.page)  # the error, with Join again
