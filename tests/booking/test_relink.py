"""A stale or cancelled manage link is no dead end (issue 17 point 5): "send my current link again" records
``booking.link_requested`` (ids only), LINK_RESEND_PER_HOUR times an hour per booking, and answers the same
whether or not anything goes, revealing nothing of the booking."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.booking import create_app
from services.booking.config import BookingConfig
from services.booking.models import OutboxEvent
from shared import events, links
from shared.links import current_signer
from tests.booking.conftest import STAFF
from tests.booking.factories import PATIENT, booking_body, make_setup
from tests.booking.pages_support import form_action, submit, text

TUESDAY_10 = "2026-03-03T10:00:00-05:00"
NEUTRAL = "If we have a way to reach you, a new link is on its way."
LATER = "2026-03-24T10:00:00-04:00"  # three weeks on, past the first link's life
BASE = "http://127.0.0.1:8001"


def _book(client: FlaskClient, setup: Any) -> tuple[str, str]:
    created = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF)
    assert created.status_code == 201, created.json
    return created.json["id"], created.json["manage_url"].removeprefix(BASE)


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
            "course_id",  # a manage link's request names no course
        }
        assert event.course_id is None
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


# --- an expired link (past the end of its visit plus a week) --------------------------------------------------


def _short(app: Flask, booking_id: str, version: int, ends_at: datetime) -> str:
    with app.test_request_context():
        url = links.short_manage_url(
            current_signer().keys, BASE, booking_id=booking_id, version=version, ends_at=ends_at
        )
    return url.removeprefix(BASE)


def test_an_expired_link_says_so_and_sends_the_current_one(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(pages_app)
    booking_id, manage = _book(pages_client, setup)
    ends_at = datetime.fromisoformat(
        pages_client.get(f"/api/v1/bookings/{booking_id}", headers=STAFF).json["end"]
    )
    short = _short(pages_app, booking_id, 1, ends_at)
    moved = pages_client.post(
        f"/api/v1/bookings/{booking_id}/reschedule", json={"start": LATER}, headers=STAFF
    )
    assert moved.status_code == 200
    # A week after the first time's end, the first link has expired; the current one (a later visit) has not.
    clock.move_to(ends_at + timedelta(days=8))
    for path in (manage, pages_client.get(short).headers["Location"]):
        expired = pages_client.get(path)
        assert expired.status_code == 410
        page = text(expired.text)
        assert "This link has expired" in page
        assert "Send my current link again" in page
        assert "Book again" in page
        _reveals_nothing(page)
    expired = pages_client.get(manage)
    assert form_action(expired.text) == f"{manage}/send-link?lang=en"
    answer = submit(pages_client, expired.text)
    assert answer.status_code == 303
    sent = pages_client.get(answer.headers["Location"])
    assert sent.status_code == 200
    assert NEUTRAL in text(sent.text)
    _reveals_nothing(text(sent.text))
    (requested,) = _requests(pages_app, booking_id)
    assert requested["booking_version"] == 2
    # An API client keeps its problem+json 410, on the API and on the page's path alike.
    for api in (
        pages_client.get(f"/api/v1{manage}"),
        pages_client.post(f"/api/v1{manage}/send-link"),
        pages_client.get(manage, headers={"Accept": "application/problem+json"}),
    ):
        assert api.status_code == 410
        assert api.mimetype == "application/problem+json"
        assert api.json["type"].endswith("/link-expired")
    assert len(_requests(pages_app, booking_id)) == 1


def test_a_tampered_expired_link_gets_nothing(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(pages_app)
    booking_id, manage = _book(pages_client, setup)
    ends_at = datetime.fromisoformat(
        pages_client.get(f"/api/v1/bookings/{booking_id}", headers=STAFF).json["end"]
    )
    short = _short(pages_app, booking_id, 1, ends_at)
    clock.move_to(ends_at + timedelta(days=8))
    token = manage.removeprefix("/manage/")
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (f"/manage/{flipped}", short[:-2] + ("A" if short[-2] != "A" else "B") + short[-1]):
        refused = pages_client.get(bad)
        assert refused.status_code == 404, bad
        page = text(refused.text)
        assert "This link does not work" in page
        assert "Send my current link again" not in page
        assert "Book again" not in page
    assert pages_client.post(f"/manage/{flipped}/send-link", data={}).status_code in (400, 404)
    assert _requests(pages_app, booking_id) == []


def test_an_expired_link_speaks_the_patient_s_language_and_sends_nothing_dead(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(pages_app)
    created = pages_client.post(
        "/api/v1/bookings", json=booking_body(setup, TUESDAY_10, language="es"), headers=STAFF
    )
    assert created.status_code == 201, created.json
    booking_id, manage = created.json["id"], created.json["manage_url"].removeprefix(BASE)
    clock.move_to(datetime.fromisoformat(created.json["end"]) + timedelta(days=8))
    expired = pages_client.get(manage)
    assert expired.status_code == 410
    assert '<html lang="es">' in expired.text
    page = text(expired.text)
    assert "Este enlace ha caducado" in page
    assert "Enviarme de nuevo el enlace vigente" in page
    assert "Reservar otra cita" in page
    _reveals_nothing(page)
    answer = submit(pages_client, expired.text)
    assert answer.status_code == 303
    sent = pages_client.get(answer.headers["Location"])
    assert "Si tenemos cómo comunicarnos con usted, le llegará un enlace nuevo." in text(sent.text)
    # The visit is long over, so even its current link would not open: nothing is sent, the answer is the same.
    assert _requests(pages_app, booking_id) == []
