"""A course plan books as proposed: random busy clinics, each plan booked at once with nothing in between."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from services.booking import search, service
from services.booking.catalog import service as catalog
from services.booking.courses import service as courses
from services.booking.resources import service as resources
from shared.db import get_db
from shared.problems import Conflict
from tests.booking.conftest import STAFF
from tests.booking.factories import PATIENT, make_chair_setup

SEEDS = 20
COURSES_PER_CLINIC = 3
ZONES = ("America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kathmandu")
# Days a week or two before a daylight-saving change in one of the zones, so plans run across it.
AROUND = (
    datetime(2026, 3, 2, tzinfo=UTC),
    datetime(2026, 3, 23, tzinfo=UTC),
    datetime(2026, 3, 30, tzinfo=UTC),
    datetime(2026, 9, 28, tzinfo=UTC),
    datetime(2026, 10, 19, tzinfo=UTC),
    datetime(2026, 10, 26, tzinfo=UTC),
)


def _hours(rng: random.Random, days: int) -> list[tuple[int, clock_time, clock_time]]:
    """Random hours on ``days`` random weekdays, on the 5-minute grid."""
    chosen = rng.sample(range(7), days)
    return [
        (d, clock_time(rng.randint(6, 10), rng.choice((0, 15, 30, 45))), clock_time(rng.randint(15, 21)))
        for d in chosen
    ]


def _type_fields(rng: random.Random) -> dict[str, Any]:
    duration = rng.choice((30, 45, 60, 90))
    return {
        "slug": "session",
        "name": "Session",
        "duration_minutes": duration,
        "slot_interval_minutes": rng.choice((15, 30, 60)),
        "mode": "in_person",
        "location": "1 Clinic Road",
        "reminder_protocol": "infusion-session",
        "horizon_days": rng.choice((45, 90, 120)),
        "resource_kind": "chair",
        "recovery_minutes": rng.choice((0, 15, 30, 60)),
        "provider_minutes": rng.choice((None, 20, duration)),
        "buffer_before_minutes": rng.choice((0, 0, 5, 15)),
        "buffer_after_minutes": rng.choice((0, 0, 10, 30)),
        "min_notice_minutes": rng.choice((0, 0, 60, 24 * 60)),
        "daily_limit": rng.choice((None, None, 2, 4)),
        "one_per_day": rng.random() < 0.3,
    }


def _template_fields(rng: random.Random, type_id: int) -> dict[str, Any]:
    return {
        "slug": "course",
        "name": "Course",
        "session_type_id": type_id,
        "sessions": rng.randint(2, 6),
        "min_hours_between": rng.choice((0, 0, 2, 24, 48)),
        "max_per_week": rng.choice((None, 2, 3)),
        "within_days": rng.choice((None, 14, 28)),
        "same_provider": rng.choice(("preferred", "required")),
    }


def _clinic(app: Flask, rng: random.Random, seed: int) -> dict[str, Any]:
    """A random clinic: providers (some in another zone), chairs, a session type, a template, and visits
    of another type and of the session type already booked over the next weeks."""
    zone = rng.choice(ZONES)
    with app.app_context(), get_db().transaction() as session:
        clinic = catalog.create_clinic(session=session, slug=f"prop-{seed}", name="Clinic", time_zone=zone)
        kind = catalog.create_appointment_type(session=session, clinic_id=clinic.id, fields=_type_fields(rng))
        visit = catalog.create_appointment_type(
            session=session,
            clinic_id=clinic.id,
            fields={
                "slug": "visit",
                "name": "Visit",
                "duration_minutes": 30,
                "slot_interval_minutes": 30,
                "mode": "in_person",
                "location": "1 Clinic Road",
                "reminder_protocol": "follow-up",
                "horizon_days": 60,
            },
        )
        providers = []
        for n in range(rng.randint(2, 5)):
            provider = catalog.create_provider(
                session=session,
                clinic_id=clinic.id,
                name=f"Dr. {n}",
                email=f"dr{n}@example.com",
                time_zone=zone if rng.random() < 0.7 else rng.choice(ZONES),
                appointment_type_ids=[kind.id, visit.id],
            )
            catalog.set_weekly_availability(
                session=session, provider_id=provider.id, rules=_hours(rng, rng.randint(3, 7))
            )
            providers.append(provider.id)
        for n in range(rng.randint(1, 4)):
            resources.create_resource(
                session=session, clinic_id=clinic.id, name=f"Chair {n}", kind="chair", hours=_hours(rng, 6)
            )
        template = courses.create_template(
            session=session, clinic_id=clinic.id, fields=_template_fields(rng, kind.id)
        )
        ids = {"providers": providers, "template_id": template.id, "type_id": kind.id, "visit_id": visit.id}
    _closures_and_bookings(app, rng, ids)
    return ids


def _closures_and_bookings(app: Flask, rng: random.Random, ids: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    with app.app_context(), get_db().transaction() as session:
        for provider_id in ids["providers"]:
            day = (now + timedelta(days=rng.randint(0, 20))).date()
            windows = [] if rng.random() < 0.5 else [(clock_time(12), clock_time(16))]
            catalog.set_override(
                session=session, provider_id=provider_id, day=day, closed=not windows, windows=windows
            )
        for type_id, count in ((ids["visit_id"], 20), (ids["type_id"], 6)):
            for provider_id in ids["providers"]:
                free = search.find_slots(
                    session=session,
                    provider_id=provider_id,
                    appointment_type_id=type_id,
                    start=now,
                    end=now + timedelta(days=30),
                )
                for n, start in enumerate(rng.sample(free, min(count, len(free)))):
                    try:
                        with session.begin_nested():
                            service.book_appointment(
                                session=session,
                                provider_id=provider_id,
                                appointment_type_id=type_id,
                                start=start,
                                patient={
                                    "name": "P",
                                    "email": f"p{provider_id}-{n}@example.com",
                                    "time_zone": "UTC",
                                },
                            )
                    except Conflict:  # taken by an earlier one of these (a chair, a daily limit)
                        continue


def _plan_body(rng: random.Random, ids: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"template_id": ids["template_id"]}
    if rng.random() < 0.3:
        body["provider_id"] = rng.choice(ids["providers"])
    if rng.random() < 0.3:
        body["weekdays"] = rng.sample(range(7), rng.randint(3, 6))
    if rng.random() < 0.3:
        body["times"] = [{"earliest": "06:00", "latest": "11:00"}, {"earliest": "14:00", "latest": "20:00"}]
    return body


def test_every_plan_books_as_proposed(app: Flask, client: FlaskClient) -> None:
    # The property behind issue 18: with no other request in flight, a plan the planner proposes is one the
    # booking accepts, whatever the clinic's hours, zones, chairs, buffers, limits and rules. The clock does
    # not move between the plan and its booking (the one thing that may change in between: the bench).
    refused: list[tuple[int, int, Any]] = []
    booked = 0
    for seed in range(SEEDS):
        rng = random.Random(seed)
        at = rng.choice(AROUND) + timedelta(
            minutes=rng.randrange(0, 7 * 24 * 60, 5), seconds=rng.choice((0, 59))
        )
        with time_machine.travel(at, tick=False):
            ids = _clinic(app, rng, seed)
            for n in range(COURSES_PER_CLINIC):
                plan = client.post("/api/v1/courses/plan", json=_plan_body(rng, ids), headers=STAFF)
                if plan.status_code == 422:
                    continue
                assert plan.status_code == 200, plan.json
                sessions = [
                    {"start": s["start"], "provider_id": s["provider_id"]} for s in plan.json["sessions"]
                ]
                patient = {**PATIENT, "email": f"c{seed}-{n}@example.com"}
                body = {"template_id": ids["template_id"], "sessions": sessions, "patient": patient}
                answer = client.post("/api/v1/courses", json=body, headers=STAFF)
                if answer.status_code != 201:
                    refused.append((seed, n, answer.status_code, answer.json["detail"], sessions))
                booked += answer.status_code == 201
    assert not refused, "\n".join(map(str, refused))
    assert booked > SEEDS


def test_the_clock_passing_the_first_start_is_the_one_refusal_left(app: Flask, client: FlaskClient) -> None:
    # What a single client can still meet (the bench classifies it): the earliest plan starts at the next
    # free start, and if the clock passes that start before the booking, the booking refuses it with the
    # slot's 409 and a fresh plan from then on. Nothing else stood between this plan and its booking.
    setup = make_chair_setup(app, providers=1, chairs=1)
    with app.app_context(), get_db().transaction() as session:
        template = courses.create_template(
            session=session,
            clinic_id=setup.clinic_id,
            fields={
                "slug": "induction",
                "name": "Induction",
                "session_type_id": setup.type_id,
                "sessions": 3,
                "min_hours_between": 24,
            },
        )
        template_id = template.id
    plan_at = datetime(2026, 3, 2, 15, 29, 59, tzinfo=UTC)  # Monday 10:29:59 in New York
    with time_machine.travel(plan_at, tick=False):
        plan = client.post("/api/v1/courses/plan", json={"template_id": template_id}, headers=STAFF)
    assert plan.json["sessions"][0]["start"] == "2026-03-02T10:30:00-05:00"
    sessions = [{"start": s["start"], "provider_id": s["provider_id"]} for s in plan.json["sessions"]]
    body = {"template_id": template_id, "sessions": sessions, "patient": PATIENT}
    with time_machine.travel(plan_at + timedelta(seconds=2), tick=False):
        answer = client.post("/api/v1/courses", json=body, headers=STAFF)
        assert answer.status_code == 409
        assert answer.json["detail"] == "That time is no longer available."
        assert answer.json["plan"]["sessions"][0]["start"] == "2026-03-02T11:00:00-05:00"
        fresh = [
            {"start": s["start"], "provider_id": s["provider_id"]} for s in answer.json["plan"]["sessions"]
        ]
        booked = client.post("/api/v1/courses", json={**body, "sessions": fresh}, headers=STAFF)
        assert booked.status_code == 201, booked.json
