"""The escort on the pages: the details step of a type that requires one, and the manage link's escort page."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services.booking.models import Booking, Escort, OutboxEvent
from shared import events
from shared.db import get_db
from tests.booking.conftest import STAFF
from tests.booking.factories import Setup, booking_body, make_setup
from tests.booking.pages_support import PATIENT_FORM, submit, text

TUESDAY_10_NY = "2026-03-03T15:00:00+00:00"
ESCORT_FORM = {"escort_first_name": "Sam", "escort_phone": "+44 7911 123457"}


def _setup(app: Flask, **fields: Any) -> Setup:
    return make_setup(
        app,
        mode="in_person",
        location="1 Clinic Road",
        recovery_minutes=30,
        requires_escort=True,
        **fields,
    )


def _details_url(setup: Setup) -> str:
    start = TUESDAY_10_NY.replace("+", "%2B")
    return f"/book/clinic-consult/consult/{setup.provider_id}/details?start={start}&provider_id={setup.provider_id}"


def _escort_and_events(app: Flask) -> tuple[Escort | None, list[events.BookingEvent]]:
    with app.app_context(), get_db().transaction() as session:
        booking = session.scalars(select(Booking)).one()
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))
        found = [events.load_event(row.payload) for row in rows]
        escort = session.get(Escort, booking.id)
        if escort is not None:
            session.expunge(escort)
        return escort, found


def test_the_details_step_takes_an_escort_who_agreed(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = _setup(pages_app)
    form = pages_client.get(_details_url(setup))
    assert form.status_code == 200
    assert "Who is taking you home?" in text(form.text)
    assert "leave this blank and add it later" in text(form.text)
    unagreed = submit(pages_client, form.text, **PATIENT_FORM, **ESCORT_FORM)
    assert unagreed.status_code == 422
    assert "confirm they agreed to be contacted" in text(unagreed.text)
    assert 'href="#escort-agreed"' in unagreed.text
    assert 'value="Sam"' in unagreed.text  # what the patient typed is kept
    bad_phone = submit(
        pages_client, unagreed.text, **PATIENT_FORM, escort_first_name="Sam", escort_phone="12"
    )
    assert bad_phone.status_code == 422
    assert 'href="#escort-phone"' in bad_phone.text
    with pages_app.app_context(), get_db().transaction() as session:
        assert session.scalars(select(Booking)).all() == []
    booked = submit(pages_client, bad_phone.text, **PATIENT_FORM, **ESCORT_FORM, escort_agreed="yes")
    assert booked.status_code == 303, text(booked.text)
    escort, found = _escort_and_events(pages_app)
    assert escort is not None
    assert (escort.first_name, escort.phone, escort.patient_first_name) == ("Sam", "+447911123457", "Jordan")
    [confirmed] = found
    assert confirmed.booking.escort is not None
    assert confirmed.booking.escort.first_name == "Sam"
    page = text(pages_client.get(booked.headers["Location"]).text)  # 10:00 + 45 minutes + 30 of recovery
    assert "Sam picks you up at Tuesday 3 March 2026, 11:15 AM, when your recovery time ends" in page


def test_without_an_escort_the_booking_says_one_is_needed_and_the_manage_page_takes_it(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = _setup(pages_app)
    form = pages_client.get(_details_url(setup))
    booked = submit(pages_client, form.text, **PATIENT_FORM)
    assert booked.status_code == 303, text(booked.text)
    manage_path = booked.headers["Location"].split("?")[0]
    assert "Escort needed" in text(pages_client.get(manage_path).text)
    page = pages_client.get(f"{manage_path}/escort")
    assert page.status_code == 200
    assert "add it later" not in text(page.text)  # here the escort is what the form is for
    blank = submit(pages_client, page.text)
    assert blank.status_code == 422
    assert "enter their first name" in text(blank.text)
    assert _escort_and_events(pages_app)[0] is None
    saved = submit(
        pages_client, blank.text, **ESCORT_FORM, escort_patient_first_name="Jo", escort_agreed="yes"
    )
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith("?done=escort")  # the same link: the version did not move
    shown = text(pages_client.get(saved.headers["Location"]).text)
    assert "We have saved who is taking you home" in shown
    assert "Sam picks you up" in shown
    escort, found = _escort_and_events(pages_app)
    assert escort is not None
    assert escort.patient_first_name == "Jo"
    assert [e.type for e in found] == [events.BOOKING_CONFIRMED, events.BOOKING_ESCORT_CHANGED]
    change = pages_client.get(f"{manage_path}/escort")
    assert 'value="Sam"' in change.text
    removed = submit(pages_client, change.text, remove="yes")  # the remove button's form
    assert removed.status_code == 303
    assert "Escort needed" in text(pages_client.get(manage_path).text)
    escort, found = _escort_and_events(pages_app)
    assert escort is None
    assert found[-1].booking.escort is None


def test_types_without_escorts_show_no_escort_fields(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    form = pages_client.get(_details_url(setup))
    assert "Who is taking you home" not in text(form.text)
    created = pages_client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10_NY), headers=STAFF)
    manage_path = created.json["manage_url"].removeprefix("http://127.0.0.1:8001")
    assert "Who is taking you home" not in text(pages_client.get(manage_path).text)
    assert pages_client.get(f"{manage_path}/escort").status_code == 302


def test_the_escort_page_is_in_spanish_for_a_spanish_speaking_patient(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = _setup(pages_app)
    body = booking_body(setup, TUESDAY_10_NY, language="es")
    created = pages_client.post("/api/v1/bookings", json=body, headers=STAFF)
    manage_path = created.json["manage_url"].removeprefix("http://127.0.0.1:8001")
    page = text(pages_client.get(f"{manage_path}/escort").text)
    assert "Quién le lleva a casa" in page
    assert "Who is taking you home" not in page
