"""An expired course link is no dead end (issue 17 point 5): "send my course link again" records
``booking.link_requested`` naming the course (ids only) on the course's last session, as often as a manage
link's (LINK_RESEND_PER_HOUR an hour), and answers the same whether or not anything goes."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.booking import create_app
from services.booking.config import BookingConfig
from services.booking.models import OutboxEvent
from shared import events, links
from shared.db import get_db
from shared.links import current_signer
from tests.booking.conftest import STAFF
from tests.booking.courses.test_courses import EXPECTED, _template
from tests.booking.factories import PATIENT, make_chair_setup, table_counts
from tests.booking.pages_support import form_action, hidden, submit, text

BASE = "http://127.0.0.1:8001"
NEUTRAL = "If we have a way to reach you, a new link is on its way."
BOOSTER = "2026-04-08T10:00:00-04:00"


def _course(client: FlaskClient, app: Flask, *, language: str = "en") -> dict[str, Any]:
    setup = make_chair_setup(app, providers=1, chairs=1)
    template = _template(client, setup, booster_type_id=setup.type_id, booster_interval_days=28)
    body = {
        "template_id": template["id"],
        "sessions": [{"start": s, "provider_id": setup.provider_ids[0]} for s in EXPECTED],
        "patient": {**PATIENT, "language": language},
    }
    answer = client.post("/api/v1/courses", json=body, headers=STAFF)
    assert answer.status_code == 201, answer.json
    return {**answer.json, "provider_id": setup.provider_ids[0]}


def _booster(client: FlaskClient, course: dict[str, Any]) -> dict[str, Any]:
    boosted = client.post(
        f"/api/v1/courses/{course['id']}/boosters",
        json={"start": BOOSTER, "provider_id": course["provider_id"]},
        headers=STAFF,
    )
    assert boosted.status_code == 201, boosted.json
    return dict(boosted.json["sessions"][-1])


def _requests(app: Flask) -> list[dict[str, Any]]:
    """Every ``booking.link_requested`` payload in the outbox, oldest first."""
    with app.app_context(), get_db().transaction() as session:
        rows = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.event_type == events.BOOKING_LINK_REQUESTED)
            .order_by(OutboxEvent.seq)
        )
        return [dict(r.payload) for r in rows]


def _reveals_nothing(page: str) -> None:
    """No time, session, patient or contact detail of the course on a page anyone with the link sees."""
    for secret in ("10:00", "Session 1", "March", PATIENT["name"], PATIENT["email"], PATIENT["phone"]):
        assert secret not in page, secret


def _csrf(client: FlaskClient, course: dict[str, Any]) -> str:
    """A fresh form token of this client's session (tokens last an hour), from a session's old manage link."""
    return hidden(client.get(course["sessions"][0]["manage_url"].removeprefix(BASE)).text, "csrf_token")


def _short(app: Flask, course: dict[str, Any]) -> str:
    with app.test_request_context():
        url = links.short_course_url(
            current_signer().keys,
            BASE,
            course_id=course["id"],
            ends_at=datetime.fromisoformat(course["sessions"][-1]["end"]),
        )
    return url.removeprefix(BASE)


def test_an_expired_course_link_sends_the_current_one_at_most_three_times_an_hour(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    course = _course(pages_client, pages_app)
    path = course["course_url"].removeprefix(BASE)
    short = _short(pages_app, course)
    booster = _booster(pages_client, course)
    # A week after the sixth session the first link has expired; the course's current one (to the booster) not.
    clock.move_to(datetime.fromisoformat(course["sessions"][-1]["end"]) + timedelta(days=8))
    for way in (path, pages_client.get(short).headers["Location"]):
        expired = pages_client.get(way)
        assert expired.status_code == 410
        page = text(expired.text)
        assert "This link has expired" in page
        assert "Send my course link again" in page
        assert "Book again" in page
        _reveals_nothing(page)
    expired = pages_client.get(path)
    assert form_action(expired.text) == f"{path}/send-link?lang=en"
    answers = [submit(pages_client, expired.text) for _ in range(5)]
    assert {a.status_code for a in answers} == {303}
    assert {a.headers["Location"] for a in answers} == {f"{path}/link-sent?lang=en"}
    sent = pages_client.get(answers[0].headers["Location"])
    assert sent.status_code == 200
    assert NEUTRAL in text(sent.text)
    _reveals_nothing(text(sent.text))
    # Five asks, three sent on, each naming the course and its last session (the booster): ids only.
    requested = _requests(pages_app)
    assert len(requested) == 3
    for payload in requested:
        event = events.load_link_requested(payload)
        assert (str(event.course_id), str(event.booking_id)) == (course["id"], booster["id"])
        assert set(payload) == {
            "event_id",
            "type",
            "schema_version",
            "occurred_at",
            "correlation_id",
            "booking_id",
            "booking_version",
            "course_id",
        }
    clock.shift(timedelta(hours=1, minutes=1))
    assert submit(pages_client, expired.text).status_code == 303
    assert len(_requests(pages_app)) == 4
    # An API client keeps its problem+json 410.
    asked = pages_client.get(path, headers={"Accept": "application/problem+json"})
    assert asked.status_code == 410
    assert asked.json["type"].endswith("/link-expired")


def test_a_course_over_for_good_sends_nothing_and_answers_the_same(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    course = _course(pages_client, pages_app, language="es")
    path = course["course_url"].removeprefix(BASE)
    clock.move_to(datetime.fromisoformat(course["sessions"][-1]["end"]) + timedelta(days=8))
    expired = pages_client.get(path)
    assert expired.status_code == 410
    assert '<html lang="es">' in expired.text
    page = text(expired.text)
    assert "Este enlace ha caducado" in page
    assert "Enviarme de nuevo el enlace del tratamiento" in page
    assert "Reservar otra cita" in page
    _reveals_nothing(page)
    answer = submit(pages_client, expired.text)
    assert answer.status_code == 303
    sent = pages_client.get(answer.headers["Location"])
    assert "Si tenemos cómo comunicarnos con usted, le llegará un enlace nuevo." in text(sent.text)
    # Its last session is a week gone, so even the current link would not open: nothing goes.
    assert _requests(pages_app) == []


def test_a_stopped_course_says_so_and_offers_only_booking_again(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    course = _course(pages_client, pages_app)
    path = course["course_url"].removeprefix(BASE)
    stopped = pages_client.post(f"/api/v1/courses/{course['id']}/cancel", json={}, headers=STAFF)
    assert stopped.status_code == 200, stopped.json
    clock.move_to(datetime.fromisoformat(course["sessions"][-1]["end"]) + timedelta(days=8))
    expired = pages_client.get(path)
    assert expired.status_code == 410
    page = text(expired.text)
    assert "This treatment course was stopped." in page
    assert "Book again" in page
    assert "Send my course link again" not in page
    assert 'method="post"' not in expired.text
    _reveals_nothing(page)
    # Posted anyway (an old form): the same answer, nothing sent.
    csrf = _csrf(pages_client, course)
    answer = pages_client.post(f"{path}/send-link", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert _requests(pages_app) == []


def test_a_tampered_course_link_gets_nothing(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    course = _course(pages_client, pages_app)
    _booster(pages_client, course)
    token = course["course_url"].rsplit("/", 1)[1]
    short = _short(pages_app, course)
    clock.move_to(datetime.fromisoformat(course["sessions"][-1]["end"]) + timedelta(days=8))
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (f"/course/{flipped}", short[:-2] + ("A" if short[-2] != "A" else "B") + short[-1]):
        refused = pages_client.get(bad)
        assert refused.status_code == 404, bad
        page = text(refused.text)
        assert "This link does not work" in page
        assert "Send my course link again" not in page
    assert pages_client.post(f"/course/{flipped}/send-link", data={}).status_code in (400, 404)
    unknown = str(uuid.UUID(int=5))
    with pages_app.test_request_context():
        stranger = links.course_token(
            current_signer(), course_id=unknown, ends_at=datetime.fromisoformat(BOOSTER)
        )
    csrf = _csrf(pages_client, course)
    # With a good form token too: a forged link, or a genuine one of no course, names nothing.
    assert pages_client.post(f"/course/{flipped}/send-link", data={"csrf_token": csrf}).status_code == 404
    assert pages_client.post(f"/course/{stranger}/send-link", data={"csrf_token": csrf}).status_code == 404
    assert _requests(pages_app) == []


def test_send_link_refuses_hostile_links_and_forms_and_records_nothing(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    course = _course(pages_client, pages_app)
    token = course["course_url"].rsplit("/", 1)[1]
    last_end = datetime.fromisoformat(course["sessions"][-1]["end"])
    with pages_app.test_request_context():
        signer = current_signer()
        # Genuine signatures of the wrong kind: another purpose naming this course, a subject that is no id.
        other_purposes = [
            signer.sign(purpose=purpose, subject=course["id"], version=1, expires_at=last_end)
            for purpose in (links.MANAGE, links.JOIN, links.DAY_CHECK, links.INVITE)
        ]
        not_an_id = signer.sign(purpose=links.COURSE, subject="not-an-id", version=1, expires_at=last_end)
        nobody = links.course_token(signer, course_id=str(uuid.UUID(int=7)), ends_at=last_end)
    session_link = course["sessions"][0]["manage_url"].rsplit("/", 1)[1]
    hostile = [
        session_link,  # a session's manage link is no course link
        *other_purposes,
        not_an_id,
        nobody,
        token[: len(token) // 2],
        "x" * 4000,
        "ü" * 40,
        "%E2%80%AE" + token,  # a right-to-left override in front
        ".",
        "..x",
    ]
    clock.move_to(last_end + timedelta(days=8))  # the genuine link has expired: its form is offered
    csrf = _csrf(pages_client, course)
    path = f"/course/{token}"
    before = table_counts(pages_app)
    for bad in hostile:
        sent = pages_client.post(f"/course/{bad}/send-link", data={"csrf_token": csrf})
        assert sent.status_code == 404, bad
        assert "This link does not work" in text(sent.text)
        assert pages_client.get(f"/course/{bad}/link-sent").status_code == 404, bad
        asked = pages_client.post(
            f"/course/{bad}/send-link",
            data={"csrf_token": csrf},
            headers={"Accept": "application/problem+json"},
        )
        assert (asked.status_code, asked.mimetype) == (404, "application/problem+json"), bad
        assert asked.json["type"].endswith("/link-invalid")
    # The genuine expired link's form without its CSRF token, with another session's, or sent as JSON.
    assert pages_client.post(f"{path}/send-link", data={}).status_code == 400
    assert pages_client.post(f"{path}/send-link", data={"csrf_token": "x" * 200}).status_code == 400
    assert pages_client.post(f"{path}/send-link", json={"csrf_token": csrf}).status_code == 400
    stranger = pages_app.test_client()  # another browser: the token is not of its session
    assert stranger.post(f"{path}/send-link", data={"csrf_token": csrf}).status_code == 400
    assert table_counts(pages_app) == before
    assert _requests(pages_app) == []


def test_send_link_shares_the_pages_submission_limit(
    pages_config: BookingConfig, clock: time_machine.Coordinates
) -> None:
    app = create_app(dataclasses.replace(pages_config, booking_rate_limit="3 per minute"))
    app.config["TESTING"] = True
    client = app.test_client()
    try:
        course = _course(client, app)
        path = course["course_url"].removeprefix(BASE)
        _booster(client, course)
        clock.move_to(datetime.fromisoformat(course["sessions"][-1]["end"]) + timedelta(days=8))
        expired = client.get(path)
        assert expired.status_code == 410
        answers = [submit(client, expired.text).status_code for _ in range(3)]
        assert answers == [303, 303, 303]
        before = table_counts(app)
        # A fourth from the same address is stopped before it reaches the booking: nothing recorded.
        limited = submit(client, expired.text)
        assert limited.status_code == 429
        assert "Please wait a moment" in text(limited.text)
        assert table_counts(app) == before
        # One count with every other form: the escort form of a session too.
        escort = client.post(
            course["sessions"][0]["manage_url"].removeprefix(BASE) + "/escort",
            data={"csrf_token": hidden(expired.text, "csrf_token")},
        )
        assert escort.status_code == 429
        assert table_counts(app) == before
        assert len(_requests(app)) == 3
    finally:
        app.extensions["db"].dispose()
