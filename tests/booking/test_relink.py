"""A stale or cancelled manage link is no dead end (issue 17 point 5): "send my current link again" records
``booking.link_requested`` (ids only), LINK_RESEND_PER_HOUR times an hour per booking, and answers the same
whether or not anything goes, revealing nothing of the booking."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.booking import create_app
from services.booking.config import BookingConfig
from services.booking.models import OutboxEvent
from shared import events
from tests.booking.conftest import STAFF
from tests.booking.factories import PATIENT, booking_body, make_setup
from tests.booking.pages_support import form_action, submit, text

TUESDAY_10 = "2026-03-03T10:00:00-05:00"
NEUTRAL = "If we have a way to reach you, a new link is on its way."


def _book(client: FlaskClient, setup: Any) -> tuple[str, str]:
    created = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF)
    assert created.status_code == 201, created.json
    return created.json["id"], created.json["manage_url"].removeprefix("http://127.0.0.1:8001")


def _requests(app: Flask, booking_id: str) -> list[dict[str, Any]]:
    """The ``booking.link_requested`` payloads in the outbox for this booking, oldest first."""
    with app.app_context(), app.extensions["db"].transaction() as session:
        rows = session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.booking_id == uuid.UUID(booking_id),
                OutboxEvent.event_type == events.BOOKING_LINK_REQUESTED,
            )
            .order_by(OutboxEvent.seq)
        )
        return [dict(r.payload) for r in rows]


def _reveals_nothing(page: str) -> None:
    """No time, provider, patient or contact detail of the booking on a page anyone with the link sees."""
    for secret in ("3:00", "10:00", "Tuesday", "Dr.", PATIENT["name"], PATIENT["email"], PATIENT["phone"]):
        assert secret not in page, secret


def test_a_moved_booking_s_old_link_sends_the_current_one_at_most_three_times_an_hour(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(pages_app)
    booking_id, manage = _book(pages_client, setup)
    moved = pages_client.post(
        f"/api/v1/bookings/{booking_id}/reschedule",
        json={"start": "2026-03-04T10:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200
    stale = pages_client.get(manage)
    assert stale.status_code == 409
    assert "This appointment has changed" in text(stale.text)
    assert "Send my current link again" in text(stale.text)
    assert form_action(stale.text) == f"{manage}/send-link"
    _reveals_nothing(text(stale.text))

    answers = [submit(pages_client, stale.text) for _ in range(5)]
    assert {a.status_code for a in answers} == {303}
    assert {a.headers["Location"] for a in answers} == {f"{manage}/link-sent"}
    sent = pages_client.get(answers[0].headers["Location"])
    assert sent.status_code == 200
    assert NEUTRAL in text(sent.text)
    _reveals_nothing(text(sent.text))
    # Five asks, three sent on: the fourth and fifth got the same answer and sent nothing.
    requested = _requests(pages_app, booking_id)
    assert len(requested) == 3
    for payload in requested:
        event = events.load_link_requested(payload)
        assert str(event.booking_id) == booking_id
        assert event.booking_version == 2  # the current version, not the old link's
        assert set(payload) == {
            "event_id",
            "type",
            "schema_version",
            "occurred_at",
            "correlation_id",
            "booking_id",
            "booking_version",
        }
    # An hour on, the patient may ask again.
    clock.shift(timedelta(hours=1, minutes=1))
    assert submit(pages_client, stale.text).status_code == 303
    assert len(_requests(pages_app, booking_id)) == 4


def test_a_cancelled_booking_s_old_link_offers_book_again_and_the_current_link(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(pages_app)
    booking_id, manage = _book(pages_client, setup)
    ask = pages_client.get(manage + "/cancel")
    assert submit(pages_client, ask.text).status_code == 303
    stale = pages_client.get(manage)
    assert stale.status_code == 409
    page = text(stale.text)
    assert "This appointment was cancelled" in page
    assert "Book again" in page
    assert "Send my current link again" in page
    _reveals_nothing(page)
    assert submit(pages_client, stale.text).status_code == 303
    (requested,) = _requests(pages_app, booking_id)
    assert requested["booking_version"] == 2
    # The staff API lists it among the booking's events, with no times.
    listed = pages_client.get(f"/api/v1/bookings/{booking_id}/events", headers=STAFF).json
    assert [(e["type"], e["version"], e["start"]) for e in listed][-1] == (
        events.BOOKING_LINK_REQUESTED,
        2,
        None,
    )


def test_the_form_needs_its_csrf_token(pages_app: Flask, pages_client: FlaskClient, clock: object) -> None:
    setup = make_setup(pages_app)
    booking_id, manage = _book(pages_client, setup)
    refused = pages_client.post(f"{manage}/send-link", data={})
    assert refused.status_code == 400
    assert _requests(pages_app, booking_id) == []


def test_the_api_answers_the_same_whether_or_not_anything_goes(
    client: FlaskClient, app: Flask, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(app)
    booking_id, manage = _book(client, setup)
    token = manage.removeprefix("/manage/")
    answers = [client.post(f"/api/v1/manage/{token}/send-link") for _ in range(4)]
    assert {a.status_code for a in answers} == {202}
    assert {a.json["detail"] for a in answers} == {NEUTRAL}
    assert len(_requests(app, booking_id)) == 3
    forged = client.post("/api/v1/manage/not-a-token/send-link")
    assert forged.status_code == 404
    assert forged.mimetype == "application/problem+json"
    assert forged.json["type"].endswith("link-invalid")
    # Past the link's life (the end plus a week): 410, as every manage link.
    clock.shift(timedelta(days=9))
    gone = client.post(f"/api/v1/manage/{token}/send-link")
    assert gone.status_code == 410
    assert gone.mimetype == "application/problem+json"


@pytest.fixture
def never_app(booking_config: BookingConfig) -> Iterator[Flask]:
    app = create_app(dataclasses.replace(booking_config, link_resend_per_hour=0))
    app.config["TESTING"] = True
    yield app
    app.extensions["db"].dispose()


def test_zero_sends_nothing_and_still_answers_the_same(never_app: Flask, clock: object) -> None:
    client = never_app.test_client()
    setup = make_setup(never_app)
    booking_id, manage = _book(client, setup)
    answer = client.post(f"/api/v1/manage/{manage.removeprefix('/manage/')}/send-link")
    assert answer.status_code == 202
    assert answer.json["detail"] == NEUTRAL
    assert _requests(never_app, booking_id) == []
