"""The console outbox page in a real browser (Debian's Chromium) on a phone: whatever a message holds, it passes
axe, including links far longer than a line."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from services.notify.senders.base import OutgoingSms
from services.notify.senders.console import ConsoleSmsSender
from tests.notify.conftest import outbox
from tests.support.browser import assert_accessible, no_horizontal_scroll
from tests.support.http import serve

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("backend", ["sqlite"])]


@pytest.mark.parametrize("token_length", [8, 24, 40, 64, 200])
def test_an_sms_with_an_unbroken_link_stays_inside_its_box(
    app: Flask, browser: Any, token_length: int
) -> None:
    # A join link's token is one long word. Before the page wrapped it, some lengths ran past the text box and
    # axe could not tell its contrast (CI went red when a booking's time made the SMS carry one).
    link = "http://127.0.0.1:8003/join/" + "Ab3x" * (token_length // 4)
    ConsoleSmsSender(app.extensions["db"]).send(
        OutgoingSms(
            key=f"k{token_length}",
            to="+14155552671",
            body=f"Demo Clinic: join at {link} Reply STOP to opt out",
        )
    )
    (sms,) = outbox(app, "sms")
    context = browser.new_context(viewport={"width": 360, "height": 780}, bypass_csp=True)
    try:
        page = context.new_page()
        with serve(app) as base:
            page.goto(f"{base}/outbox/{sms.id}")
            assert link in page.locator("pre").inner_text().replace("\n", "")
            no_horizontal_scroll(page)
            pre_right = page.evaluate(
                "(() => { const p = document.querySelector('pre'); "
                "return p.scrollWidth <= p.clientWidth; })()"
            )
            assert pre_right, "the message runs past its box"
            assert_accessible(page)
    finally:
        context.close()
