"""The booking pages through Flask's client, on SQLite and PostgreSQL: steps, validation, slot taken, CSRF."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.booking import create_app
from services.booking.catalog import service as catalog
from services.booking.config import BookingConfig
from services.booking.models import Booking, Intake, OutboxEvent
from shared.db import get_db
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup
from tests.booking.pages_support import PATIENT_FORM, hidden, links, submit, text

LONDON = "Europe/London"
TUESDAY_10_NY = "2026-03-03T15:00:00+00:00"  # 10:00 in New York, 15:00 in London
INTAKE = {"reasons": ["depression", "chronic_pain"], "treatments_tried": "Two SSRIs and talking therapy"}


def _count(app: Flask, model: Any) -> int:
    with app.app_context(), get_db().transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _details_url(setup: Any, start: str = TUESDAY_10_NY, tz: str = LONDON) -> str:
    start = start.replace("+", "%2B")
    query = f"start={start}&provider_id={setup.provider_id}&tz={tz}"
    return f"/book/clinic-consult/consult/{setup.provider_id}/details?{query}"


def test_steps_show_types_providers_and_times_in_the_patients_zone(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app, description="A first talk by video.")
    types = pages_client.get("/book/clinic-consult")
    assert types.status_code == 200
    assert "Consultation" in text(types.text)
    assert "45 minutes" in text(types.text)
    assert "Video call" in text(types.text)

    # One provider: the provider step goes straight on to the times.
    providers = pages_client.get(f"/book/clinic-consult/consult?tz={LONDON}")
    assert providers.status_code == 302
    assert providers.headers["Location"].endswith(
        f"/book/clinic-consult/consult/{setup.provider_id}?tz={LONDON}"
    )

    slots = pages_client.get(f"/book/clinic-consult/consult/{setup.provider_id}?tz={LONDON}")
    assert slots.status_code == 200
    page = text(slots.text)
    assert f"Times are shown in London time ({LONDON}, GMT)" in page
    assert "Dr. Test works in New York time (America/New_York" in page
    # Monday is today (noon UTC = 7 AM in New York); the first free day is Monday afternoon, 9-5 in New York.
    times = links(slots.text, "time")
    assert "Times on Mon 2 Mar" in page
    first = parse_qs(urlsplit(times[0]).query)
    assert first["start"] == ["2026-03-02T14:00:00+00:00"]  # 9:00 New York, 14:00 London
    assert "2:00 PM" in page
    assert "9:00 PM" in page
    assert "12 Mar" in page
    assert "15 Mar" in page

    tuesday = pages_client.get(f"/book/clinic-consult/consult/{setup.provider_id}?tz={LONDON}&day=2026-03-03")
    assert "Times on Tue 3 Mar" in text(tuesday.text)
    assert len(links(tuesday.text, "time")) == 30  # 9:00-16:15 every 15 minutes


def test_first_available_merges_providers(pages_app: Flask, pages_client: FlaskClient, clock: object) -> None:
    setup = make_setup(pages_app)
    with pages_app.app_context(), get_db().transaction() as session:
        other = catalog.create_provider(
            session=session,
            clinic_id=setup.clinic_id,
            name="Dr. West",
            email="west@example.com",
            time_zone="America/Los_Angeles",
            appointment_type_ids=[setup.type_id],
        )
        catalog.set_weekly_availability(
            session=session,
            provider_id=other.id,
            rules=[(d, __import__("datetime").time(9), __import__("datetime").time(17)) for d in range(5)],
        )
    chooser = pages_client.get(f"/book/clinic-consult/consult?tz={LONDON}")
    assert chooser.status_code == 200
    assert "First available" in chooser.text
    assert "Dr. West" in chooser.text
    assert "Dr. Test" in chooser.text
    slots = pages_client.get(f"/book/clinic-consult/consult/any?tz={LONDON}&day=2026-03-03")
    providers_offered = {parse_qs(urlsplit(u).query)["provider_id"][0] for u in links(slots.text, "time")}
    # New York opens first; Los Angeles is still open after New York closes.
    assert providers_offered == {str(setup.provider_id), str(other.id)}
    # Per-provider public link: only that provider.
    per_provider = pages_client.get(f"/book/clinic-consult?provider={other.id}&tz={LONDON}")
    assert per_provider.status_code == 302
    assert f"/consult/{other.id}" in pages_client.get(per_provider.headers["Location"]).headers["Location"]


def test_booking_with_intake_confirms_and_keeps_health_details_private(
    pages_app: Flask, pages_client: FlaskClient, clock: object, caplog: Any
) -> None:
    setup = make_setup(pages_app, asks_intake=True, change_cutoff_hours=24)
    form = pages_client.get(_details_url(setup))
    assert form.status_code == 200
    assert "Tuesday 3 March 2026, 3:00 PM" in text(form.text)
    assert "That is Tuesday 3 March 2026, 10:00 AM for Dr. Test" in text(form.text)
    assert "What brings you to us?" in form.text

    with caplog.at_level("DEBUG"):
        done = submit(pages_client, form.text, **PATIENT_FORM, **INTAKE)
    assert done.status_code == 303, text(done.text)
    location = done.headers["Location"]
    assert location.startswith("/manage/")
    assert location.endswith("?done=booked")
    for private in ("Jordan", "jordan", "7911", "example.com"):
        assert private not in location

    confirmation = pages_client.get(location)
    page = text(confirmation.text)
    assert "You're booked" in page
    assert "Tuesday 3 March 2026, 3:00 PM" in page
    assert "Your personal video link is sent to you before the appointment by text and email" in page
    assert (
        "You can change or cancel online until Monday 2 March 2026, 3:00 PM (24 hours before it starts)"
        in page
    )
    assert re.search(r'href="http://127\.0\.0\.1:8003/join/[^"]+"', confirmation.text)
    assert 'href="/manage/' in confirmation.text
    assert "calendar.ics" in confirmation.text
    assert confirmation.headers["Cache-Control"] == "no-store"
    assert confirmation.headers["Referrer-Policy"] == "no-referrer"

    with pages_app.app_context(), get_db().transaction() as session:
        booking = session.scalars(select(Booking)).one()
        assert booking.patient.phone == "+447911123456"
        assert booking.patient.time_zone == LONDON
        assert booking.patient.sms_consent
        intake = session.get(Intake, booking.id)
        assert intake is not None
        assert intake.reasons == INTAKE["reasons"]
        payloads = [json.dumps(e.payload) for e in session.scalars(select(OutboxEvent))]
    assert len(payloads) == 1
    for secret in ("depression", "chronic_pain", "SSRI", "talking therapy"):
        assert secret not in payloads[0]
        assert secret not in caplog.text
    staff = pages_client.get(f"/api/v1/bookings/{booking.id}", headers=STAFF)
    assert staff.json["intake"]["reasons"] == ["depression", "chronic_pain"]
    assert staff.json["intake"]["treatments_tried"] == INTAKE["treatments_tried"]
    managed = pages_client.get(f"/api/v1/manage/{location.split('/')[2].split('?')[0]}")
    assert "intake" not in managed.json


def test_invalid_input_is_tied_to_its_fields_and_kept(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app, asks_intake=True)
    form = pages_client.get(_details_url(setup))
    answer = submit(
        pages_client,
        form.text,
        name="Jordan Example",
        phone="555 12",
        email="jordan@example",
        reasons=["other"],
    )
    assert answer.status_code == 422
    page = answer.text
    assert 'id="phone"' in page
    phone_input = re.search(r'<input id="phone"[^>]+>', page).group(0)
    assert 'aria-invalid="true"' in phone_input
    assert 'aria-describedby="phone-hint phone-error"' in phone_input
    assert 'id="phone-error"' in page
    assert "not a valid phone number" in text(page)
    assert 'aria-invalid="true"' in re.search(r'<input id="email"[^>]+>', page).group(0)
    assert "tell us briefly what brings you" in text(page)
    assert 'href="#phone"' in page
    assert 'id="error-summary"' in page
    # What the patient typed is still there.
    assert 'value="Jordan Example"' in page
    assert 'value="555 12"' in page
    assert 'value="other" checked' in page
    assert _count(pages_app, Booking) == 0


def test_phone_is_needed_only_for_text_messages(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    form = pages_client.get(_details_url(setup))
    assert 'Mobile number <span class="optional">(optional)</span>' in form.text
    texts = submit(
        pages_client, form.text, name="Jordan Example", email="jordan@example.com", sms_consent="yes"
    )
    assert texts.status_code == 422
    assert 'href="#phone"' in texts.text
    assert "enter a mobile number for text messages, or untick text messages" in text(texts.text)
    assert _count(pages_app, Booking) == 0
    booked = submit(pages_client, texts.text, name="Jordan Example", email="jordan@example.com")
    assert booked.status_code == 303
    with pages_app.app_context(), get_db().transaction() as session:
        booking = session.scalars(select(Booking)).one()
        assert booking.patient.phone is None
        assert booking.patient.sms_consent is False


def test_slot_just_taken_offers_nearest_times_and_keeps_input(
    pages_app: Flask, pages_client: FlaskClient, clock: object
) -> None:
    setup = make_setup(pages_app)
    form = pages_client.get(_details_url(setup))
    taken = pages_client.post(
        "/api/v1/bookings",
        json=booking_body(setup, "2026-03-03T10:00:00-05:00", email="first@example.com"),
        headers=STAFF,
    )
    assert taken.status_code == 201
    answer = submit(pages_client, form.text, **PATIENT_FORM)
    assert answer.status_code == 409
    page = text(answer.text)
    assert "Sorry, Tuesday 3 March 2026, 3:00 PM was just taken" in page
    assert "Your details below are kept" in page
    assert 'value="Jordan Example"' in answer.text
    assert 'value="+44 7911 123456"' in answer.text
    alternatives = re.findall(r'name="start" value="([^"]+)"', answer.text)
    # The nearest free starts: just before and just after the taken 45 minutes, then the next one.
    assert alternatives == [
        "2026-03-03T14:15:00+00:00",
        "2026-03-03T15:45:00+00:00",
        "2026-03-03T14:00:00+00:00",
    ]
    booked = submit(pages_client, answer.text, start=alternatives[0], **PATIENT_FORM)
    assert booked.status_code == 303
    assert _count(pages_app, Booking) == 2


def test_double_submission_books_once(pages_app: Flask, pages_client: FlaskClient, clock: object) -> None:
    setup = make_setup(pages_app)
    form = pages_client.get(_details_url(setup))
    first = submit(pages_client, form.text, **PATIENT_FORM)
    second = submit(pages_client, form.text, **PATIENT_FORM)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert _count(pages_app, Booking) == 1


def test_forms_need_a_csrf_token(pages_app: Flask, pages_client: FlaskClient, clock: object) -> None:
    setup = make_setup(pages_app)
    form = pages_client.get(_details_url(setup))
    data = {"start": hidden(form.text, "start"), "provider_id": str(setup.provider_id), **PATIENT_FORM}
    forged = pages_client.post(_details_url(setup), data={**data, "csrf_token": "forged"})
    # The details form keeps what was typed and asks again; nothing is booked.
    assert forged.status_code == 400
    assert "form had expired" in text(forged.text)
    assert 'value="Jordan Example"' in forged.text
    assert _count(pages_app, Booking) == 0
    again = submit(pages_client, forged.text, **PATIENT_FORM)
    assert again.status_code == 303

    # A manage form without the token is refused outright.
    token = again.headers["Location"].split("/")[2].split("?")[0]
    cancel = pages_client.post(f"/manage/{token}/cancel", data={})
    assert cancel.status_code == 400
    assert "open for too long" in text(cancel.text)
    with pages_app.app_context(), get_db().transaction() as session:
        assert session.scalars(select(Booking)).one().status == "confirmed"
    # The JSON API is not cookie-authenticated and needs no CSRF token.
    assert pages_client.post(f"/api/v1/manage/{token}/cancel", json={}).status_code == 200


def test_booking_submissions_are_rate_limited(
    booking_config: BookingConfig, clock: object, redis_client: Any
) -> None:
    app = create_app(dataclasses.replace(booking_config, booking_rate_limit="2 per minute"))
    client = app.test_client()
    try:
        setup = make_setup(app)
        form = client.get(_details_url(setup))
        answers = [submit(client, form.text, name="", phone="", email="").status_code for _ in range(3)]
        assert answers == [422, 422, 429]
        limited = submit(client, form.text, **PATIENT_FORM)
        assert limited.status_code == 429
        assert "Please wait a moment" in text(limited.text)
        assert _count(app, Booking) == 0
        # One count for every submission, whichever form sends it.
        cancel = client.post("/manage/any-token/cancel", data={"csrf_token": hidden(form.text, "csrf_token")})
        assert cancel.status_code == 429
        # Counted in Redis, so every replica shares the count.
        assert any(b"patient-submissions" in key for key in redis_client.keys("*"))
        # Looking around is not limited, nor is the staff API.
        assert client.get(f"/book/clinic-consult/consult/{setup.provider_id}").status_code == 200
        assert (
            client.post(
                "/api/v1/bookings", json=booking_body(setup, "2026-03-03T10:00:00-05:00"), headers=STAFF
            ).status_code
            == 201
        )
    finally:
        app.extensions["db"].dispose()


def test_unknown_clinic_type_or_provider(pages_app: Flask, pages_client: FlaskClient, clock: object) -> None:
    setup = make_setup(pages_app)
    assert pages_client.get("/book/no-such-clinic").status_code == 404
    assert pages_client.get("/book/clinic-consult/no-such-type").status_code == 404
    missing = pages_client.get("/book/clinic-consult/consult/999")
    assert missing.status_code == 404
    assert "We could not find that page" in text(missing.text)
    bad_start = pages_client.get(f"/book/clinic-consult/consult/{setup.provider_id}/details?start=soon")
    assert bad_start.status_code == 302


def test_cookie_key_is_derived_from_the_link_key_unless_set() -> None:
    from shared.config import load

    derived = load(BookingConfig, environ={"LINK_SIGNING_KEYS": "k" * 40})
    assert derived.cookie_key == load(BookingConfig, environ={"LINK_SIGNING_KEYS": "k" * 40}).cookie_key
    assert derived.cookie_key not in ("", "k" * 40)
    rotated = load(BookingConfig, environ={"LINK_SIGNING_KEYS": "k" * 40 + "," + "n" * 40})
    assert rotated.cookie_key != derived.cookie_key
    assert load(BookingConfig, environ={"BOOKING_SECRET_KEY": "explicit"}).cookie_key == "explicit"
