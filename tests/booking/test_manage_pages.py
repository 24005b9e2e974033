"""The manage pages: see, reschedule and cancel through the signed link; the change policy; the .ics file."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar

from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup
from tests.booking.pages_support import links, submit, text

TUESDAY_10 = "2026-03-03T10:00:00-05:00"


def _book(client: FlaskClient, setup: Any, start: str = TUESDAY_10, **patient: Any) -> tuple[str, str]:
    created = client.post("/api/v1/bookings", json=booking_body(setup, start, **patient), headers=STAFF)
    assert created.status_code == 201, created.json
    return created.json["id"], created.json["manage_url"].removeprefix("http://127.0.0.1:8001")


def _ics(client: FlaskClient, manage_path: str) -> Any:
    response = client.get(manage_path + "/calendar.ics")
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert "attachment" in response.headers["Content-Disposition"]
    calendar = Calendar.from_ical(response.data)
    (event,) = calendar.events
    return calendar, event


def test_reschedule_through_the_page_updates_the_calendar_entry(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app, change_cutoff_hours=2)
    booking_id, manage = _book(pages_client, setup)
    page = pages_client.get(manage)
    assert "Tuesday 3 March 2026, 3:00 PM" in text(page.text)  # the patient is in London
    assert (
        "You can change or cancel online until Tuesday 3 March 2026, 1:00 PM (2 hours before it starts)"
        in text(page.text)
    )
    calendar, event = _ics(pages_client, manage)
    assert calendar["METHOD"] == "PUBLISH"
    assert str(event["UID"]) == f"booking-{booking_id}@127.0.0.1"
    assert event["SEQUENCE"] == 0
    assert event.start.isoformat() == "2026-03-03T15:00:00+00:00"
    assert str(event["SUMMARY"]) == "Consultation, Clinic"

    picker = pages_client.get(manage + "/reschedule?day=2026-03-04")
    assert picker.status_code == 200
    confirm = pages_client.get(links(picker.text, "time")[4])  # Wednesday 10:00 New York
    assert "Move your appointment?" in text(confirm.text)
    moved = submit(pages_client, confirm.text)
    assert moved.status_code == 303
    new_manage = moved.headers["Location"].split("?")[0]
    assert new_manage != manage
    assert "Your appointment has moved" in text(pages_client.get(moved.headers["Location"]).text)
    # The old link says what happened (moved: no new time) and where the newer link is.
    outdated = pages_client.get(manage)
    assert outdated.status_code == 409
    assert "This appointment has changed" in text(outdated.text)
    assert "Open the link in your most recent text or email" in text(outdated.text)
    assert "10:00" not in text(outdated.text)
    assert "Wed" not in text(outdated.text)

    _, moved_event = _ics(pages_client, new_manage)
    assert moved_event["UID"] == event["UID"]
    assert moved_event["SEQUENCE"] == 1
    assert moved_event.start.isoformat() == "2026-03-04T15:00:00+00:00"
    staff = pages_client.get(f"/api/v1/bookings/{booking_id}", headers=STAFF).json
    assert staff["version"] == 2
    assert staff["start"] == "2026-03-04T15:00:00+00:00"


def test_reschedule_to_a_time_just_taken_offers_alternatives(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    _, manage = _book(pages_client, setup)
    picker = pages_client.get(manage + "/reschedule?day=2026-03-04")
    confirm = pages_client.get(links(picker.text, "time")[0])  # Wednesday 9:00 New York
    _book(pages_client, setup, "2026-03-04T09:00:00-05:00", email="quick@example.com")
    taken = submit(pages_client, confirm.text)
    assert taken.status_code == 409
    page = text(taken.text)
    assert "was just taken" in page
    assert "Your appointment has not changed: it is still Tuesday 3 March 2026, 3:00 PM" in page
    moved = submit(pages_client, taken.text, start="2026-03-04T14:45:00+00:00")
    assert moved.status_code == 303


def test_cancel_through_the_page(pages_app: Flask, pages_client: FlaskClient, clock: object) -> None:
    setup = make_setup(pages_app)
    booking_id, manage = _book(pages_client, setup)
    ask = pages_client.get(manage + "/cancel")
    assert "Cancel your appointment?" in text(ask.text)
    done = submit(pages_client, ask.text)
    assert done.status_code == 303
    page = text(pages_client.get(done.headers["Location"]).text)
    assert "Your appointment is cancelled" in page
    assert "Change time" not in page
    staff = pages_client.get(f"/api/v1/bookings/{booking_id}", headers=STAFF).json
    assert staff["status"] == "cancelled"
    assert staff["cancelled_by"] == "patient"
    _, event = _ics(pages_client, done.headers["Location"].split("?")[0])
    assert event["STATUS"] == "CANCELLED"
    assert event["SEQUENCE"] == 1
    # The time is free again.
    assert (
        pages_client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF).status_code
        == 201
    )


def test_change_policy_closes_online_changes_for_patients_only(
    pages_app: Flask, pages_client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    setup = make_setup(pages_app, change_cutoff_hours=24)
    booking_id, manage = _book(pages_client, setup)
    token = manage.split("/")[2]
    confirm = pages_client.get(f"{manage}/reschedule/confirm?start=2026-03-04T15:00:00%2B00:00")
    clock.shift(timedelta(hours=3, minutes=1))  # 21 hours before the start
    page = pages_client.get(manage)
    assert "Change time" not in page.text
    assert (
        "Online changes close 24 hours before the appointment, so this one can no longer be changed"
        in text(page.text)
    )
    assert pages_client.get(manage + "/cancel").status_code == 302

    # A form opened earlier is refused, with the reason, and nothing changes.
    late = submit(pages_client, confirm.text)
    assert late.status_code == 409
    assert "can no longer be changed online" in text(late.text)
    api = pages_client.post(f"/api/v1/manage/{token}/cancel", json={})
    assert api.status_code == 409
    assert api.json["type"].endswith("/change-window-closed")
    assert api.json["change_deadline"] == "2026-03-02T15:00:00+00:00"
    moved = pages_client.post(
        f"/api/v1/manage/{token}/reschedule", json={"start": "2026-03-04T15:00:00+00:00"}
    )
    assert moved.status_code == 409
    # Staff still can.
    staff = pages_client.post(f"/api/v1/bookings/{booking_id}/cancel", json={}, headers=STAFF)
    assert staff.status_code == 200
    assert staff.json["status"] == "cancelled"


def test_the_policy_is_a_staff_api_field(pages_app: Flask, pages_client: FlaskClient, clock: object) -> None:
    setup = make_setup(pages_app)
    changed = pages_client.patch(
        f"/api/v1/appointment-types/{setup.type_id}",
        json={"change_cutoff_hours": 48, "asks_intake": True},
        headers=STAFF,
    )
    assert changed.status_code == 200
    assert changed.json["change_cutoff_hours"] == 48
    assert changed.json["asks_intake"] is True
    bad = pages_client.patch(
        f"/api/v1/appointment-types/{setup.type_id}", json={"change_cutoff_hours": -1}, headers=STAFF
    )
    assert bad.status_code == 422
    assert bad.json["invalid_params"][0]["name"] == "change_cutoff_hours"


def test_the_short_sms_link_leads_to_the_manage_page(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    from shared import links as signed

    setup = make_setup(pages_app)
    booking_id, _ = _book(pages_client, setup)
    keys = pages_app.extensions["link_signer"].keys
    end = pages_client.get(f"/api/v1/bookings/{booking_id}", headers=STAFF).json["end"]
    from datetime import datetime

    short = signed.short_manage_url(
        keys, "http://x", booking_id=booking_id, version=1, ends_at=datetime.fromisoformat(end)
    ).removeprefix("http://x")
    hop = pages_client.get(short)
    assert hop.status_code == 302
    assert hop.headers["Location"].startswith("/manage/")
    page = pages_client.get(hop.headers["Location"])
    assert page.status_code == 200
    assert "Your appointment" in text(page.text)
    assert pages_client.get(short[:-3] + "AAA").status_code == 404
    assert "This link does not work" in text(pages_client.get("/m/nonsense").text)
