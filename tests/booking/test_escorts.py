"""Escorts: given at booking, by manage link or by staff; every change an event; the escort's YES applied once."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.booking import jobs
from services.booking.outbox import events_of
from services.booking.seed import seed_demo
from shared import events
from shared.db import get_db
from tests.booking.conftest import STAFF
from tests.booking.factories import (
    ChairSetup,
    assert_refused,
    booking_body,
    chair_body,
    make_chair_setup,
    make_setup,
    table_counts,
)
from tests.booking.pages_support import text

TUESDAY_10 = "2026-03-03T10:00:00-05:00"
ESCORT = {"first_name": "Sam", "phone": "+1 415 555 2672", "agreed": True}
SAM = "+14155552672"
RILEY = "+14155552673"


def _setup(app: Flask) -> ChairSetup:
    return make_chair_setup(app, providers=1, requires_escort=True)


def _book(app: Flask, client: FlaskClient, setup: ChairSetup | None = None, **extra: Any) -> dict[str, Any]:
    body = {**chair_body(setup or _setup(app), TUESDAY_10), **extra}
    created = client.post("/api/v1/bookings", json=body, headers=STAFF)
    assert created.status_code == 201, created.json
    return dict(created.json)


def _events(app: Flask, booking_id: str) -> list[events.BookingEvent]:
    with app.app_context(), get_db().transaction() as session:
        # Every payload meets the contract notify loads it with.
        return [events.load_event(row.payload) for row in events_of(session, uuid.UUID(booking_id))]


def _reply(app: Flask, booking_id: str, version: int, replied_at: datetime, event_id: Any = None) -> str:
    payload = events.dump_event(
        events.SmsReplyEvent(
            booking_id=uuid.UUID(booking_id),
            booking_version=version,
            meaning=events.ESCORT_CONFIRMED,
            replied_at=replied_at,
            event_id=event_id or uuid.uuid4(),
        )
    )
    with app.app_context():
        return jobs.handle_sms_reply(payload)


def _escort(client: FlaskClient, booking_id: str) -> dict[str, Any]:
    found = client.get(f"/api/v1/bookings/{booking_id}/escort", headers=STAFF)
    assert found.status_code == 200, found.json
    return dict(found.json)


def test_an_escort_given_at_booking_travels_in_the_booking_event(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client, escort=ESCORT)
    escort = booking["escort"]
    assert (escort["state"], escort["first_name"], escort["phone"]) == ("unconfirmed", "Sam", SAM)
    assert escort["patient_first_name"] == "Jordan"  # the first word of the patient's name by default
    # Picked up after the 60-minute session and 30 minutes of recovery.
    assert escort["pickup_at"] == "2026-03-03T16:30:00+00:00"
    [confirmed] = _events(app, booking["id"])
    assert confirmed.type == events.BOOKING_CONFIRMED
    assert confirmed.booking.escort is not None
    assert (confirmed.booking.escort.phone, str(confirmed.booking.escort.id)) == (SAM, escort["id"])
    assert confirmed.booking.escort.pickup_at == datetime(2026, 3, 3, 16, 30, tzinfo=UTC)


def test_a_type_requiring_an_escort_may_be_booked_without_one_and_shows_it_missing(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client)
    assert booking["escort"]["state"] == "missing"
    assert "phone" not in booking["escort"]
    [confirmed] = _events(app, booking["id"])
    assert confirmed.booking.escort is None
    # The event says the type needs one, so notify can nudge the patient and alert the clinic.
    assert confirmed.booking.appointment_type.requires_escort is True
    other = make_setup(app, slug="video")
    plain = client.post("/api/v1/bookings", json=booking_body(other, TUESDAY_10), headers=STAFF)
    assert plain.json["escort"]["state"] == "not_needed"
    [video] = _events(app, plain.json["id"])
    assert video.booking.appointment_type.requires_escort is False


def test_staff_give_change_confirm_and_remove_an_escort_each_an_event(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client)
    url = f"/api/v1/bookings/{booking['id']}/escort"
    given = client.put(url, json=ESCORT, headers=STAFF)
    assert given.status_code == 200, given.json
    assert (given.json["state"], given.json["phone"]) == ("unconfirmed", SAM)
    # The same escort again changes nothing and tells nobody.
    assert client.put(url, json=ESCORT, headers=STAFF).json["id"] == given.json["id"]
    renamed = client.put(url, json={**ESCORT, "patient_first_name": "Jo"}, headers=STAFF).json
    assert (renamed["id"], renamed["patient_first_name"]) == (given.json["id"], "Jo")
    confirmed = client.post(f"{url}/confirmation", headers=STAFF)
    assert confirmed.status_code == 200, confirmed.json
    assert (confirmed.json["state"], confirmed.json["confirmed_how"]) == ("confirmed", "staff")
    assert client.post(f"{url}/confirmation", headers=STAFF).json["state"] == "confirmed"  # no second event
    # Another number is another escort: a new id, to be confirmed again.
    changed = client.put(url, json={**ESCORT, "first_name": "Riley", "phone": RILEY}, headers=STAFF).json
    assert changed["id"] != given.json["id"]
    assert (changed["state"], changed["confirmed_at"], changed["patient_first_name"]) == (
        "unconfirmed",
        None,
        "Jo",
    )
    removed = client.delete(url, headers=STAFF)
    assert removed.status_code == 200, removed.json
    assert removed.json["state"] == "missing"
    assert client.delete(url, headers=STAFF).json["state"] == "missing"
    found = _events(app, booking["id"])
    assert [e.type for e in found] == [events.BOOKING_CONFIRMED] + [events.BOOKING_ESCORT_CHANGED] * 5
    escorts = [e.booking.escort for e in found[1:]]
    assert [(e.first_name, e.phone, e.confirmed_how) if e else None for e in escorts] == [
        ("Sam", SAM, None),
        ("Sam", SAM, None),
        ("Sam", SAM, "staff"),
        ("Riley", RILEY, None),
        None,
    ]
    # An escort change is no change of the booking: its version and the patient's links stand.
    assert client.get(f"/api/v1/bookings/{booking['id']}", headers=STAFF).json["version"] == 1


def test_the_patient_gives_and_removes_an_escort_through_the_manage_link(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client)
    token = booking["manage_url"].rsplit("/", 1)[1]
    given = client.put(f"/api/v1/manage/{token}/escort", json={**ESCORT, "patient_first_name": "J"})
    assert given.status_code == 200, given.json
    assert (given.json["state"], given.json["patient_first_name"]) == ("unconfirmed", "J")
    assert client.get(f"/api/v1/manage/{token}").json["escort"]["first_name"] == "Sam"
    assert client.delete(f"/api/v1/manage/{token}/escort").json["state"] == "missing"
    assert [e.type for e in _events(app, booking["id"])][1:] == [events.BOOKING_ESCORT_CHANGED] * 2
    assert client.put(f"/api/v1/manage/{token}x/escort", json=ESCORT).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ESCORT, "phone": "12"}, "phone"),
        ({**ESCORT, "phone": "+44 20 7946 0958"}, "phone"),
        ({**ESCORT, "agreed": False}, "agreed"),
        ({"first_name": "Sam", "phone": SAM}, "agreed"),
        ({**ESCORT, "first_name": ""}, "first_name"),
        ({**ESCORT, "first_name": "S\u0007m"}, "first_name"),
        ({**ESCORT, "patient_first_name": "x" * 101}, "patient_first_name"),
        ({**ESCORT, "age": 30}, "age"),
    ],
)
def test_a_bad_escort_is_a_422_naming_the_field_and_changes_nothing(
    app: Flask, client: FlaskClient, clock: object, body: dict[str, Any], field: str
) -> None:
    setup = _setup(app)
    booking = _book(app, client, setup)
    token = booking["manage_url"].rsplit("/", 1)[1]
    assert_refused(
        app,
        client,
        [
            ("PUT", f"/api/v1/bookings/{booking['id']}/escort", body, 422, field),
            ("PUT", f"/api/v1/manage/{token}/escort", body, 422, field),
            (
                "POST",
                "/api/v1/bookings",
                {**chair_body(setup, "2026-03-04T10:00:00-05:00"), "escort": body},
                422,
                f"escort.{field}",
            ),
        ],
    )


def test_escorts_of_no_booking_a_cancelled_one_or_a_type_without_them_are_refused(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    missing = f"/api/v1/bookings/{uuid.uuid4()}/escort"
    assert_refused(
        app,
        client,
        [
            ("GET", missing, None, 404, ""),
            ("PUT", missing, ESCORT, 404, ""),
            ("DELETE", missing, None, 404, ""),
            ("POST", f"{missing}/confirmation", None, 404, ""),
        ],
    )
    booking = _book(app, client)
    url = f"/api/v1/bookings/{booking['id']}/escort"
    assert_refused(app, client, [("POST", f"{url}/confirmation", None, 409, "")])  # no escort to confirm
    client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=STAFF)
    assert_refused(app, client, [("PUT", url, ESCORT, 409, ""), ("DELETE", url, None, 409, "")])
    video = make_setup(app, slug="video")
    plain = client.post("/api/v1/bookings", json=booking_body(video, TUESDAY_10), headers=STAFF).json
    body = {**booking_body(video, "2026-03-03T11:00:00-05:00"), "escort": ESCORT}
    assert_refused(
        app,
        client,
        [
            ("PUT", f"/api/v1/bookings/{plain['id']}/escort", ESCORT, 422, "escort"),
            ("POST", "/api/v1/bookings", body, 422, "escort"),
        ],
    )
    assert client.put(url, json=ESCORT).status_code == 401  # staff only


def test_the_escorts_yes_confirms_once_for_the_escort_and_version_it_was_about(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client, escort=ESCORT)
    url = f"/api/v1/bookings/{booking['id']}/escort"
    replied = datetime.now(UTC)
    event_id = uuid.uuid4()
    assert _reply(app, booking["id"], 1, replied, event_id) == "applied"
    assert _reply(app, booking["id"], 1, replied, event_id) == "duplicate"
    assert _reply(app, booking["id"], 1, replied) == "kept"  # a second YES
    found = _escort(client, booking["id"])
    assert (found["state"], found["confirmed_how"]) == ("confirmed", "sms")
    assert datetime.fromisoformat(found["confirmed_at"]) == replied
    last = _events(app, booking["id"])[-1]
    assert last.type == events.BOOKING_ESCORT_CHANGED
    assert last.booking.escort is not None
    assert last.booking.escort.confirmed_how == "sms"
    assert len(_events(app, booking["id"])) == 2
    # The attendance of the patient is a separate matter.
    assert client.get(f"{url.rsplit('/', 1)[0]}/attendance", headers=STAFF).json["state"] == "unconfirmed"


def test_a_yes_from_an_old_escort_or_for_a_moved_or_cancelled_visit_changes_nothing(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    booking = _book(app, client, escort=ESCORT)
    url = f"/api/v1/bookings/{booking['id']}/escort"
    before_change = datetime.now(UTC)
    clock.shift(60)  # type: ignore[attr-defined]
    client.put(url, json={**ESCORT, "phone": RILEY}, headers=STAFF)
    # Sam's YES raced the change to Riley: it confirms nobody.
    assert _reply(app, booking["id"], 1, before_change) == "stale"
    assert _escort(client, booking["id"])["state"] == "unconfirmed"
    assert _reply(app, booking["id"], 1, datetime.now(UTC)) == "applied"
    moved = client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule",
        json={"start": "2026-03-03T13:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    # The confirmation was for the old pick-up time; the moved visit's event says so.
    assert (moved.json["escort"]["state"], moved.json["escort"]["pickup_at"]) == (
        "unconfirmed",
        "2026-03-03T19:30:00+00:00",
    )
    rescheduled = _events(app, booking["id"])[-1]
    assert rescheduled.booking.escort is not None
    assert rescheduled.booking.escort.confirmed_at is None
    assert _reply(app, booking["id"], 1, datetime.now(UTC)) == "stale"
    client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=STAFF)
    counts = table_counts(app)
    assert _reply(app, booking["id"], 2, datetime.now(UTC)) == "stale"
    assert table_counts(app)["outbox"] == counts["outbox"]
    assert _escort(client, booking["id"])["state"] == "unconfirmed"
    plain = _book(app, client, make_chair_setup(app, slug="other", providers=1, requires_escort=True))
    assert _reply(app, plain["id"], 1, datetime.now(UTC)) == "stale"  # no escort given


def test_readiness_shows_each_sessions_escort_state(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_chair_setup(app, providers=1, chairs=4, requires_escort=True)
    starts = ("2026-03-03T10:00:00-05:00", "2026-03-03T11:00:00-05:00", "2026-03-03T12:00:00-05:00")
    ids = [
        client.post("/api/v1/bookings", json={**chair_body(setup, start), **extra}, headers=STAFF).json["id"]
        for start, extra in zip(starts, ({}, {"escort": ESCORT}, {"escort": ESCORT}), strict=True)
    ]
    client.post(f"/api/v1/bookings/{ids[2]}/escort/confirmation", headers=STAFF)
    listed = client.get(f"/api/v1/readiness?clinic_id={setup.clinic_id}&day=2026-03-03", headers=STAFF)
    assert listed.status_code == 200, listed.json
    by_id = {row["booking_id"]: row["escort"] for row in listed.json}
    assert [by_id[i]["state"] for i in ids] == ["missing", "unconfirmed", "confirmed"]
    assert by_id[ids[2]]["confirmed_how"] == "staff"
    assert by_id[ids[2]]["confirmed_at"]
    assert listed.json[0]["booking_id"] == ids[2]  # the newest change first
    assert "phone" not in str(listed.json)
    assert SAM not in str(listed.json)
    # The day sheet page shows the same states, and counts the sessions still needing an escort.
    sheet = client.get(f"/staff/day?clinic_id={setup.clinic_id}&day=2026-03-03", headers=STAFF)
    assert sheet.status_code == 200
    shown = text(sheet.text)
    assert "1 needs an escort" in shown
    assert "Escort needed" in shown
    # None on file for a type that requires one is flagged (counted in red, the row's state in red).
    assert '<li class="flag-call">1 needs an escort</li>' in sheet.text
    assert sheet.text.count('class="state escort-missing"') == 1
    assert "Sam" not in shown
    assert SAM not in sheet.text
    other = make_setup(app, slug="video")
    client.post("/api/v1/bookings", json=booking_body(other, TUESDAY_10), headers=STAFF)
    listed = client.get(f"/api/v1/readiness?clinic_id={other.clinic_id}&day=2026-03-03", headers=STAFF)
    assert listed.json[0]["escort"]["state"] == "not_needed"


def test_escort_changes_log_no_names_or_numbers(
    app: Flask, client: FlaskClient, clock: object, log_stream: io.StringIO
) -> None:
    booking = _book(app, client, escort=ESCORT)
    url = f"/api/v1/bookings/{booking['id']}/escort"
    client.put(url, json={**ESCORT, "first_name": "Riley", "phone": RILEY}, headers=STAFF)
    client.put(url, json={**ESCORT, "phone": "not a phone"}, headers=STAFF)
    _reply(app, booking["id"], 1, datetime.now(UTC))
    client.post(f"{url}/confirmation", headers=STAFF)
    client.delete(url, headers=STAFF)
    output = log_stream.getvalue()
    assert "escort removed" in output
    for secret in ("Sam", "Riley", "Jordan", SAM, RILEY, "4155552672", "4155552673", "not a phone"):
        assert secret not in output


def test_requires_escort_is_a_staff_catalog_field_and_the_demo_infusion_has_it(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_setup(app)
    url = f"/api/v1/appointment-types/{setup.type_id}"
    assert client.get(url, headers=STAFF).json["requires_escort"] is False
    changed = client.patch(url, json={"requires_escort": True}, headers=STAFF)
    assert changed.status_code == 200, changed.json
    assert changed.json["requires_escort"] is True
    assert_refused(app, client, [("PATCH", url, {"requires_escort": "yes"}, 422, "requires_escort")])
    plain = client.post("/api/v1/bookings", json=booking_body(setup, TUESDAY_10), headers=STAFF).json
    assert plain["escort"]["state"] == "missing"
    with app.app_context(), get_db().transaction() as session:
        seed_demo(session=session)
    listed = client.get("/api/v1/appointment-types", headers=STAFF).json
    requiring = {t["slug"] for t in listed if t["requires_escort"]}
    assert requiring == {"consult", "infusion-session"}
