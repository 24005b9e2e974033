"""The infusion's day-before reminder carries the link to the booking version's safety check (issue 19)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import time_machine
from flask import Flask

from services.notify.runtime import Runtime
from shared import links
from tests.notify.conftest import MONDAY_NOON, deliver, outbox, tick
from tests.notify.factories import Booking

START = MONDAY_NOON + timedelta(days=3)  # Thursday 5 March, 12:00 UTC


def _codes(app: Flask) -> list[str]:
    """The safety-check codes of every message sent, SMS and email, in order."""
    return [code for m in outbox(app) for code in re.findall(r"/d/([A-Za-z0-9_-]+)", m.text)]


def test_the_day_before_reminder_links_the_current_versions_safety_check(
    app: Flask, runtime: Runtime, clock: time_machine.Coordinates
) -> None:
    booking = Booking(start=START, kind="infusion-session")
    deliver(app, booking.confirmed(at=MONDAY_NOON))
    tick(app)
    assert _codes(app) == []  # only the day-before reminder asks
    moved = START + timedelta(hours=2)
    deliver(app, booking.reschedule(moved, at=MONDAY_NOON + timedelta(minutes=5)))
    clock.move_to(moved - timedelta(hours=24))
    tick(app)
    sms = [m.text for m in outbox(app, "sms") if "/d/" in m.text]
    email = [m.text for m in outbox(app, "email") if "/d/" in m.text]
    assert len(sms) == 1
    assert len(email) == 1
    assert "Before you come, please answer a short safety check" in sms[0]
    codes = set(_codes(app))
    assert len(codes) == 1
    claims = links.verify_short(runtime.signer.keys, codes.pop(), purpose=links.DAY_CHECK)
    assert (uuid.UUID(claims.subject), claims.version) == (booking.id, 2)
    # Scoped to its purpose: the same code opens no manage page.
    with pytest.raises(links.LinkError, match="invalid"):
        links.verify_short(runtime.signer.keys, _codes(app)[0], purpose=links.MANAGE)
