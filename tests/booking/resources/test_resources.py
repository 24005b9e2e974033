"""Chairs and rooms: the staff API, slots that need a free chair, the chair choice, pins, moves, closures."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.booking.models import BookingResource, ResourceClaim, SlotClaim
from shared.db import get_db
from tests.booking.conftest import STAFF
from tests.booking.factories import assert_refused, chair_body, make_chair_setup, table_counts

TUESDAY = "2026-03-03"
SLOTS_TUESDAY = {"start": f"{TUESDAY}T00:00:00-05:00", "end": f"{TUESDAY}T23:59:00-05:00"}


_counts = table_counts


def _slots(client: FlaskClient, setup: Any, provider: int = 0) -> list[str]:
    answer = client.get(
        "/api/v1/slots",
        query_string={
            "provider_id": setup.provider_ids[provider],
            "appointment_type_id": setup.type_id,
            **SLOTS_TUESDAY,
        },
    )
    assert answer.status_code == 200, answer.json
    return [s["start"][11:16] for s in answer.json["slots"]]


def _book(client: FlaskClient, setup: Any, at: str, provider: int = 0, **extra: Any) -> Any:
    body = chair_body(
        setup, f"{TUESDAY}T{at}:00-05:00", provider, email=f"p{provider}-{at.replace(':', '')}@example.com"
    )
    return client.post("/api/v1/bookings", json={**body, **extra}, headers=STAFF)


def test_staff_manage_resources(app: Flask, client: FlaskClient, clock: object) -> None:
    setup = make_chair_setup(app, chairs=0)
    created = client.post(
        "/api/v1/resources",
        json={
            "clinic_id": setup.clinic_id,
            "name": "Chair A",
            "kind": "infusion-chair",
            "hours": [{"weekday": 1, "start": "09:00", "end": "12:00"}],
        },
        headers=STAFF,
    )
    assert created.status_code == 201, created.json
    chair = created.json
    assert chair["hours"] == [{"weekday": 1, "start": "09:00", "end": "12:00"}]
    assert chair["active"] is True

    listed = client.get("/api/v1/resources", query_string={"kind": "infusion-chair"}, headers=STAFF)
    assert [r["id"] for r in listed.json] == [chair["id"]]
    changed = client.patch(
        f"/api/v1/resources/{chair['id']}",
        json={"name": "Chair B", "hours": [{"weekday": 2, "start": "08:00", "end": "18:00"}]},
        headers=STAFF,
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["name"] == "Chair B"
    assert changed.json["hours"] == [{"weekday": 2, "start": "08:00", "end": "18:00"}]
    closed = client.put(
        f"/api/v1/resources/{chair['id']}/closures/2026-03-04", json={"reason": "maintenance"}, headers=STAFF
    )
    assert closed.status_code == 200, closed.json
    assert closed.json["closures"] == [{"day": "2026-03-04", "reason": "maintenance"}]
    reopened = client.delete(f"/api/v1/resources/{chair['id']}/closures/2026-03-04", headers=STAFF)
    assert reopened.status_code == 204
    assert client.get(f"/api/v1/resources/{chair['id']}", headers=STAFF).json["closures"] == []
    assert client.get("/api/v1/resources", headers={}).status_code == 401


def test_bad_resource_input_is_a_problem_and_changes_nothing(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, chairs=1)
    chair = setup.chair_ids[0]
    hours = [{"weekday": 1, "start": "09:00", "end": "12:00"}]
    good = {"clinic_id": setup.clinic_id, "name": "New chair", "kind": "infusion-chair", "hours": hours}
    booked = _book(client, setup, "10:00").json
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/api/v1/resources", {**good, "kind": "Not A Slug"}, 422, "kind"),
        ("POST", "/api/v1/resources", {**good, "clinic_id": 999}, 404, ""),
        ("POST", "/api/v1/resources", {**good, "name": "Chair 1"}, 409, ""),
        ("POST", "/api/v1/resources", {**good, "hours": [*hours, *hours]}, 422, "hours"),
        ("POST", "/api/v1/resources", {**good, "hours": [{**hours[0], "end": "08:00"}]}, 422, "hours.0.end"),
        ("PATCH", f"/api/v1/resources/{chair}", {}, 422, ""),
        ("PATCH", "/api/v1/resources/999", {"name": "X"}, 404, ""),
        ("PUT", f"/api/v1/resources/{chair}/closures/2026-02-30", {}, 404, ""),
        ("GET", "/api/v1/resources?clinic_id=abc", None, 422, "clinic_id"),
        (
            "POST",
            "/api/v1/appointment-types",
            {
                "clinic_id": setup.clinic_id,
                "slug": "x",
                "name": "X",
                "duration_minutes": 30,
                "provider_minutes": 40,
                "mode": "video",
                "reminder_protocol": "x",
            },
            422,
            "provider_minutes",
        ),
        (
            "PATCH",
            f"/api/v1/appointment-types/{setup.type_id}",
            {"provider_minutes": 90},
            422,
            "provider_minutes",
        ),
        (
            "PATCH",
            f"/api/v1/appointment-types/{setup.type_id}",
            {"recovery_minutes": 7},
            422,
            "recovery_minutes",
        ),
        ("PUT", f"/api/v1/bookings/{booked['id']}/resource", {"resource_id": 999}, 422, "resource_id"),
        ("PUT", f"/api/v1/bookings/{booked['id']}/resource", {}, 422, "resource_id"),
        (
            "PUT",
            "/api/v1/bookings/00000000-0000-0000-0000-000000000000/resource",
            {"resource_id": chair},
            404,
            "",
        ),
    ]
    assert_refused(app, client, cases)


def test_slots_need_a_free_chair_as_well_as_the_provider(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    # One chair, two providers: a 10:00 infusion holds the chair until 11:30 (60 minutes and 30 of recovery),
    # so the other provider, though free, is offered nothing that overlaps it.
    setup = make_chair_setup(app, chairs=1)
    before = _slots(client, setup, provider=1)
    assert "10:00" in before
    assert "11:00" in before
    assert _book(client, setup, "10:00").status_code == 201
    after = _slots(client, setup, provider=1)
    assert [s for s in before if s not in after] == ["09:00", "09:30", "10:00", "10:30", "11:00"]
    taken = _book(client, setup, "11:00", provider=1)
    assert taken.status_code == 409
    assert taken.json["type"].endswith("resource-unavailable")
    assert taken.json["alternatives"]  # the nearest times a provider and a chair are both free
    with app.app_context(), get_db().transaction() as session:
        # The refused booking left nothing behind: no provider time, no chair time.
        assert session.scalar(select(func.count()).select_from(SlotClaim)) == 4  # the provider: 20 minutes
        assert session.scalar(select(func.count()).select_from(ResourceClaim)) == 18


def test_one_provider_staggers_patients_across_chairs(app: Flask, client: FlaskClient, clock: object) -> None:
    # The provider is held for the first 20 minutes only: with two chairs they start one patient at 10:00 and
    # another at 10:30; a third at 10:30 finds no chair.
    setup = make_chair_setup(app, providers=1, chairs=2)
    first = _book(client, setup, "10:00")
    second = _book(client, setup, "10:30")
    assert first.status_code == second.status_code == 201, (first.json, second.json)
    assert {first.json["resource"]["id"], second.json["resource"]["id"]} == set(setup.chair_ids)
    assert _book(client, setup, "11:00").status_code == 409  # both chairs busy until 11:30 and 12:00
    assert _book(client, setup, "11:30").status_code == 201


def test_the_least_fragmenting_chair_is_chosen(app: Flask, client: FlaskClient, clock: object) -> None:
    # Chair 1 is busy 09:00-10:30; chair 2 is empty all day. A 10:30 infusion fits chair 1's afternoon gap
    # flush against the morning one, leaving chair 2 whole for a long day.
    setup = make_chair_setup(app, providers=2, chairs=2)
    morning = _book(client, setup, "09:00", resource_id=setup.chair_ids[0])
    assert morning.json["resource"]["id"] == setup.chair_ids[0]
    later = _book(client, setup, "10:30", provider=1)
    assert later.status_code == 201, later.json
    assert later.json["resource"]["id"] == setup.chair_ids[0]


def test_staff_pin_and_move_a_chair_without_changing_the_booking(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=2, chairs=2)
    pinned = _book(client, setup, "10:00", resource_id=setup.chair_ids[1]).json
    assert pinned["resource"]["id"] == setup.chair_ids[1]
    rival = _book(client, setup, "10:30", provider=1, resource_id=setup.chair_ids[1])
    assert rival.status_code == 409  # the pinned chair is taken, even though chair 1 is free
    other = _book(client, setup, "10:30", provider=1).json
    assert other["resource"]["id"] == setup.chair_ids[0]
    refused = client.put(
        f"/api/v1/bookings/{pinned['id']}/resource", json={"resource_id": setup.chair_ids[0]}, headers=STAFF
    )
    assert refused.status_code == 409
    client.post(f"/api/v1/bookings/{other['id']}/cancel", headers=STAFF)
    moved = client.put(
        f"/api/v1/bookings/{pinned['id']}/resource", json={"resource_id": setup.chair_ids[0]}, headers=STAFF
    )
    assert moved.status_code == 200, moved.json
    assert moved.json["resource"]["id"] == setup.chair_ids[0]
    assert moved.json["version"] == pinned["version"]  # the patient's manage link still works
    with app.app_context(), get_db().transaction() as session:
        rows = session.scalars(select(BookingResource)).all()
        assert [(str(r.booking_id), r.resource_id, r.pinned) for r in rows] == [
            (pinned["id"], setup.chair_ids[0], True)
        ]
        held = set(session.scalars(select(ResourceClaim.resource_id)))
        assert held == {setup.chair_ids[0]}


def test_reschedule_and_cancel_move_and_free_the_chair(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, chairs=1)
    booking = _book(client, setup, "10:00").json
    moved = client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule",
        json={"start": f"{TUESDAY}T14:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    assert "10:00" in _slots(client, setup, provider=1)
    assert "14:00" not in _slots(client, setup, provider=1)
    client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=STAFF)
    assert "14:00" in _slots(client, setup, provider=1)
    assert _counts(app)["resource_claims"] == 0


def test_a_reschedule_keeps_the_pinned_chair_or_says_why_it_cannot(
    app: Flask, client: FlaskClient, clock: object
) -> None:
    setup = make_chair_setup(app, providers=2, chairs=2)
    pinned = _book(client, setup, "10:00", resource_id=setup.chair_ids[1]).json
    # The pinned chair is free at 14:00 (chair 0 is the best fit, but staff chose chair 1): it moves along.
    moved = client.post(
        f"/api/v1/bookings/{pinned['id']}/reschedule",
        json={"start": f"{TUESDAY}T14:00:00-05:00"},
        headers=STAFF,
    )
    assert moved.status_code == 200, moved.json
    assert moved.json["resource"]["id"] == setup.chair_ids[1]
    with app.app_context(), get_db().transaction() as session:
        row = session.get(BookingResource, uuid.UUID(pinned["id"]))
        assert row is not None
        assert (row.resource_id, row.pinned) == (setup.chair_ids[1], True)
    # Another patient holds the pinned chair at 11:00 while chair 0 is free: the answer says so, nothing moves.
    rival = _book(client, setup, "11:00", provider=1, resource_id=setup.chair_ids[1])
    assert rival.status_code == 201, rival.json
    before = _counts(app)
    refused = client.post(
        f"/api/v1/bookings/{pinned['id']}/reschedule",
        json={"start": f"{TUESDAY}T11:00:00-05:00"},
        headers=STAFF,
    )
    assert refused.status_code == 409, refused.json
    assert refused.json["type"].endswith("pinned-resource-unavailable")
    assert f"resource {setup.chair_ids[1]}" in refused.json["detail"]
    assert _counts(app) == before
    assert client.get(f"/api/v1/bookings/{pinned['id']}", headers=STAFF).json["start"] == moved.json["start"]


def test_a_chair_closed_for_maintenance(app: Flask, client: FlaskClient, clock: object) -> None:
    # Closing the only chair on a date empties that date's slots; a booking already holding it stays.
    setup = make_chair_setup(app, chairs=1)
    kept = _book(client, setup, "10:00").json
    closed = client.put(f"/api/v1/resources/{setup.chair_ids[0]}/closures/{TUESDAY}", headers=STAFF)
    assert closed.status_code == 200
    assert _slots(client, setup, provider=1) == []
    assert client.get(f"/api/v1/bookings/{kept['id']}", headers=STAFF).json["status"] == "confirmed"
    assert _book(client, setup, "14:00", provider=1).status_code == 409


def test_recovery_must_fit_the_chair_hours(app: Flask, client: FlaskClient, clock: object) -> None:
    # The chair closes at 16:00: the last infusion that can start is 14:30 (60 minutes and 30 of recovery).
    from datetime import time

    setup = make_chair_setup(app, chairs=1, chair_hours=(time(9), time(16)))
    slots = _slots(client, setup)
    assert slots[-1] == "14:30"
