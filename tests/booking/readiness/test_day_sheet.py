"""Staff see who is ready: the readiness API, signed day-sheet links and the day sheet page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from shared import links
from shared.timeutil import utcnow
from tests.booking.conftest import STAFF
from tests.booking.factories import ChairSetup, booking_body, chair_body, make_chair_setup, make_setup
from tests.booking.pages_support import text
from tests.booking.readiness.test_day_check import ALL_YES, QUESTIONS, _answer, _path


def _book(client: FlaskClient, setup: ChairSetup, at: str, provider: int = 0) -> dict[str, Any]:
    body = chair_body(
        setup,
        f"2026-03-03T{at}:00:00-05:00",
        provider,
        name=f"Pat{at[:2]} Example",
        email=f"pat{at}@example.com",
    )
    created = client.post("/api/v1/bookings", json=body, headers=STAFF)
    assert created.status_code == 201, created.json
    return dict(created.json)


def _link(client: FlaskClient, **body: Any) -> Any:
    return client.post("/api/v1/readiness/links", json=body, headers=STAFF)


def _day(pages_app: Flask, pages_client: FlaskClient) -> tuple[ChairSetup, list[dict[str, Any]]]:
    """Three infusions on Tuesday with two providers and two chairs: one all clear, one needing a call."""
    setup = make_chair_setup(pages_app, providers=2, chairs=2)
    booked = [
        _book(pages_client, setup, "09", 0),
        _book(pages_client, setup, "10", 1),
        _book(pages_client, setup, "11", 0),
    ]
    _answer(pages_client, _path(pages_app, booked[0]), ALL_YES)
    _answer(pages_client, _path(pages_app, booked[2]), {**ALL_YES, "no-substances": "no"})
    return setup, booked


def test_the_api_lists_chair_attendance_and_the_checklist_flag_newest_change_first(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup, booked = _day(pages_app, pages_client)
    video = make_setup(pages_app, slug="consult")
    pages_client.post(
        "/api/v1/bookings", json=booking_body(video, "2026-03-03T12:00:00-05:00"), headers=STAFF
    )
    rows = pages_client.get(
        f"/api/v1/readiness?clinic_id={setup.clinic_id}&day=2026-03-03", headers=STAFF
    ).json
    assert [r["booking_id"] for r in rows] == [booked[2]["id"], booked[0]["id"], booked[1]["id"]]
    assert [r["checklist"] for r in rows] == ["call", "clear", "unanswered"]
    assert {r["chair"] for r in rows} <= {"Chair 1", "Chair 2"}
    assert all(r["chair"] for r in rows)
    assert all(r["escort"]["state"] == "not_needed" for r in rows)  # these infusions require no escort
    assert rows[0]["patient_first_name"] == "Pat11"
    # A visit whose type has no checklist says so (null), rather than "unanswered".
    other = pages_client.get(
        f"/api/v1/readiness?clinic_id={video.clinic_id}&day=2026-03-03", headers=STAFF
    ).json
    assert [r["checklist"] for r in other] == [None]
    assert other[0]["chair"] is None


def test_a_signed_day_sheet_link_shows_the_day_per_provider_without_any_answer(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup, _ = _day(pages_app, pages_client)
    made = _link(pages_client, clinic_id=setup.clinic_id, day="2026-03-03")
    assert made.status_code == 201, made.json
    assert made.json["expires_at"] == "2026-03-04T05:00:00+00:00"  # the day's end in New York
    path = urlsplit(made.json["url"]).path
    assert path.startswith("/staff/day/")
    page = pages_client.get(path)  # no staff key: the signed link is the credential
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    shown = text(page.text)
    assert "Who is ready: Tue 3 Mar" in shown
    assert "3 sessions" in shown
    assert "1 needs a call" in shown
    assert shown.index("Dr. Test ") < shown.index("Dr. Test 1 ")  # provider sections by name
    for expected in (
        "Pat09",
        "Pat10",
        "Pat11",
        "Chair 1",
        "All clear",
        "Needs a call",
        "Not answered",
        "0 need an escort",  # these infusions require none
    ):
        assert expected in shown, expected
    for private in (*QUESTIONS, "Example", "+1415", "jordan@example.com", "no-substances"):
        assert private not in page.text, private

    one = _link(pages_client, clinic_id=setup.clinic_id, day="2026-03-03", provider_id=setup.provider_ids[1])
    only = text(pages_client.get(urlsplit(one.json["url"]).path).text)
    assert "Pat10" in only
    assert "Pat09" not in only
    assert "1 session" in only

    spanish = text(pages_client.get(path + "?lang=es").text)
    assert "Quién está listo: martes 3 de marzo" in spanish
    assert "Necesita una llamada" in spanish


def test_the_staff_key_opens_the_day_sheet_and_bad_input_is_problem_json(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup, _ = _day(pages_app, pages_client)
    page = pages_client.get(f"/staff/day?clinic_id={setup.clinic_id}&day=2026-03-03", headers=STAFF)
    assert page.status_code == 200
    assert "Pat11" in text(page.text)
    assert pages_client.get(f"/staff/day?clinic_id={setup.clinic_id}&day=2026-03-03").status_code == 401
    for query, status, field in (
        ("day=2026-03-03", 422, "clinic_id"),
        (f"clinic_id={setup.clinic_id}&day=tuesday", 422, "day"),
        (f"clinic_id={setup.clinic_id}&day=2026-03-03&provider_id=x", 422, "provider_id"),
        (f"clinic_id={setup.clinic_id}&day=2026-03-03&extra=1", 422, "extra"),
        ("clinic_id=99999&day=2026-03-03", 404, ""),
    ):
        response = pages_client.get(f"/staff/day?{query}", headers=STAFF)
        assert response.status_code == status, (query, response.text)
        assert response.mimetype == "application/problem+json"
        assert field in str(response.json)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"day": "2026-03-03"}, 422, "clinic_id"),
        ({"clinic_id": "one", "day": "2026-03-03"}, 422, "clinic_id"),
        ({"clinic_id": 1, "day": "3 March"}, 422, "day"),
        ({"clinic_id": 1, "day": "2026-03-01"}, 422, "day"),  # over already: the link would never work
        ({"clinic_id": 1, "day": "2026-03-03", "provider_id": 99999}, 422, "provider_id"),
        ({"clinic_id": 1, "day": "2026-03-03", "secret": "x"}, 422, "secret"),
        ({"clinic_id": 99999, "day": "2026-03-03"}, 404, ""),
    ],
)
def test_a_bad_link_request_is_refused_naming_the_field(
    pages_app: Flask, pages_client: FlaskClient, clock: object, body: dict[str, Any], status: int, field: str
) -> None:
    setup = make_chair_setup(pages_app)
    body = {**body, "clinic_id": setup.clinic_id} if body.get("clinic_id") == 1 else body
    response = _link(pages_client, **body)
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    assert field in str(response.json)
    assert pages_client.post("/api/v1/readiness/links", json=body).status_code == 401


def test_bad_expired_and_wrong_purpose_day_sheet_links_get_the_link_pages(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_chair_setup(pages_app)
    path = urlsplit(_link(pages_client, clinic_id=setup.clinic_id, day="2026-03-03").json["url"]).path
    signer = pages_app.extensions["booking"].signer
    manage = links.manage_token(
        signer, booking_id=str(setup.clinic_id), version=1, ends_at=utcnow() + timedelta(1)
    )
    no_clinic = links.day_sheet_token(
        signer, clinic_id=99999, day="2026-03-03", provider_id=None, expires_at=utcnow() + timedelta(1)
    )
    bad_day = signer.sign(
        purpose=links.DAY_SHEET, subject="1", version=1, expires_at=utcnow() + timedelta(1), extra={"d": "x"}
    )
    bad_provider = signer.sign(
        purpose=links.DAY_SHEET,
        subject=str(setup.clinic_id),
        version=1,
        expires_at=utcnow() + timedelta(1),
        extra={"d": "2026-03-03", "p": "x"},
    )
    for bad in (
        path[:-3] + "abc",
        "/staff/day/nonsense",
        f"/staff/day/{manage}",
        f"/staff/day/{no_clinic}",
        f"/staff/day/{bad_day}",
        f"/staff/day/{bad_provider}",
    ):
        page = pages_client.get(bad)
        assert page.status_code == 404, bad
        assert "This link does not work" in text(page.text)
    clock.move_to(utcnow() + timedelta(days=2))
    expired = pages_client.get(path)
    assert expired.status_code == 410
    assert "This link has expired" in text(expired.text)
