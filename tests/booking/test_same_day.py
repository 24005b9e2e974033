"""Two visits of a type on one day for one patient (issue 17 point 8): a one-per-day type refuses the second
with a 409 naming the start, on the API and the pages; a type that allows it books it and the pages warn."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.booking.models import Booking, PatientDayClaim
from shared.db import get_db
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup
from tests.booking.pages_support import PATIENT_FORM, submit, text

TUESDAY_10 = "2026-03-03T10:00:00-05:00"
TUESDAY_14 = "2026-03-03T14:00:00-05:00"
TUESDAY_16 = "2026-03-03T16:00:00-05:00"
WEDNESDAY_10 = "2026-03-04T10:00:00-05:00"
WARNING = "You have another consultation booked on the same day."


def _book(client: FlaskClient, setup: Any, start: str, **patient: Any) -> Any:
    return client.post("/api/v1/bookings", json=booking_body(setup, start, **patient), headers=STAFF)


def _count(app: Flask, model: Any) -> int:
    with app.app_context(), get_db().transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _refused(response: Any) -> None:
    assert response.status_code == 409, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["type"].endswith("/same-day")
    assert "start" in response.json["errors"]["json"]


def test_a_one_per_day_type_refuses_a_second_visit_that_day(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_setup(app, one_per_day=True)
    first = _book(client, setup, TUESDAY_10)
    assert first.status_code == 201, first.json
    _refused(_book(client, setup, TUESDAY_14))
    assert _count(app, Booking) == 1  # the refused request left nothing behind
    # Another day, or another patient the same day, is fine.
    assert _book(client, setup, WEDNESDAY_10).status_code == 201
    assert _book(client, setup, TUESDAY_14, email="other@example.com").status_code == 201
    # Moving Wednesday's visit onto Tuesday is refused too, and changes nothing.
    wednesday = client.get("/api/v1/bookings?limit=50", headers=STAFF).json["items"]
    moving = next(b for b in wednesday if b["start"].startswith("2026-03-04"))
    moved = client.post(
        f"/api/v1/bookings/{moving['id']}/reschedule", json={"start": TUESDAY_16}, headers=STAFF
    )
    _refused(moved)
    assert client.get(f"/api/v1/bookings/{moving['id']}", headers=STAFF).json["version"] == 1
    # Once the first is cancelled, the day is free again; moving within the same day keeps its own claim.
    assert (
        client.post(f"/api/v1/bookings/{first.json['id']}/cancel", json={}, headers=STAFF).status_code == 200
    )
    again = client.post(
        f"/api/v1/bookings/{moving['id']}/reschedule", json={"start": TUESDAY_16}, headers=STAFF
    )
    assert again.status_code == 200, again.json
    within = client.post(
        f"/api/v1/bookings/{moving['id']}/reschedule",
        json={"start": "2026-03-03T15:00:00-05:00"},
        headers=STAFF,
    )
    assert within.status_code == 200, within.json
    assert _count(app, PatientDayClaim) == 2  # this patient's Tuesday and the other patient's


def test_visits_booked_before_the_type_became_one_per_day_count(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_setup(app)
    assert _book(client, setup, TUESDAY_10).status_code == 201
    changed = client.patch(
        f"/api/v1/appointment-types/{setup.type_id}", json={"one_per_day": True}, headers=STAFF
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["one_per_day"] is True
    _refused(_book(client, setup, TUESDAY_14))


def test_a_type_that_allows_it_books_both_and_the_pages_warn(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    first = _book(pages_client, setup, TUESDAY_10)
    assert first.status_code == 201
    manage = first.json["manage_url"].removeprefix("http://127.0.0.1:8001")
    assert WARNING not in text(pages_client.get(manage).text)
    second = _book(pages_client, setup, TUESDAY_14)
    assert second.status_code == 201, second.json
    for url in (manage, second.json["manage_url"].removeprefix("http://127.0.0.1:8001")):
        assert WARNING in text(pages_client.get(url).text)
    # Another day: no warning.
    other = _book(pages_client, setup, WEDNESDAY_10).json["manage_url"].removeprefix("http://127.0.0.1:8001")
    assert WARNING not in text(pages_client.get(other).text)


def test_the_details_page_says_so_when_the_type_refuses_it(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app, one_per_day=True)
    first = _book(pages_client, setup, TUESDAY_10, email=PATIENT_FORM["email"], phone="+447911123456")
    assert first.status_code == 201, first.json
    start = "2026-03-03T19:00:00+00:00".replace("+", "%2B")  # 14:00 in New York
    form = pages_client.get(
        f"/book/clinic-consult/consult/{setup.provider_id}/details?start={start}"
        f"&provider_id={setup.provider_id}&tz=Europe/London"
    )
    assert form.status_code == 200
    refused = submit(pages_client, form.text, **PATIENT_FORM)
    assert refused.status_code == 409
    assert "You already have this kind of appointment on that day" in text(refused.text)
    assert PATIENT_FORM["name"] in refused.text  # the answers are kept
    assert _count(pages_app, Booking) == 1
