"""Two patients racing for one slot: the database lets exactly one win, on SQLite and PostgreSQL.

The racers are released together by a barrier and go through real HTTP (a threaded server) or through
separate processes with their own connections, so no application lock can be what keeps them apart.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections import Counter
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from services.booking import service
from services.booking.catalog import service as catalog
from services.booking.models import Booking, BookingResource, Course, Patient, ResourceClaim, SlotClaim
from services.booking.resources import service as chairs
from shared.db import Database, get_db
from shared.problems import Conflict
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, chair_body, make_chair_setup, make_setup
from tests.support.http import serve

RACERS = 12


def _race(url: str, bodies: list[dict[str, Any]]) -> Counter[int]:
    barrier = threading.Barrier(len(bodies))
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def book(body: dict[str, Any]) -> None:
        barrier.wait()
        status = requests.post(f"{url}/api/v1/bookings", json=body, headers=STAFF, timeout=60).status_code
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=book, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_same_idempotency_key_racing_makes_one_booking_and_one_patient(app: Flask, clock: object) -> None:
    # A client retrying at once (a double click, a proxy retry): every answer is the one booking, and the
    # losers of the race write nothing, not even a patient row.
    setup = make_setup(app)
    body = booking_body(setup, "2026-03-03T10:00:00-05:00", email="retry@example.com")
    headers = {**STAFF, "Idempotency-Key": "double-click-1"}
    barrier = threading.Barrier(RACERS)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def book(url: str) -> None:
        barrier.wait()
        response = requests.post(f"{url}/api/v1/bookings", json=body, headers=headers, timeout=60)
        with lock:
            answers.append(response)

    with serve(app) as url:
        threads = [threading.Thread(target=book, args=(url,)) for _ in range(RACERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [r.status_code for r in answers] == [201] * RACERS
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == RACERS - 1
    assert _confirmed(app) == 1
    with app.app_context(), get_db().transaction() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1


def _confirmed(app: Flask) -> int:
    with app.app_context(), get_db().transaction() as session:
        return int(
            session.scalar(select(func.count()).select_from(Booking).where(Booking.status == "confirmed"))
            or 0
        )


def test_same_slot_over_http(app: Flask, clock: object) -> None:
    setup = make_setup(app)
    bodies = [
        booking_body(setup, "2026-03-03T10:00:00-05:00", email=f"p{i}@example.com") for i in range(RACERS)
    ]
    with serve(app) as url:
        statuses = _race(url, bodies)
    assert statuses == Counter({201: 1, 409: RACERS - 1})
    assert _confirmed(app) == 1


def test_overlapping_slots_over_http(app: Flask, clock: object) -> None:
    # 45-minute visits starting 15 minutes apart all overlap the 10:15 one: at most two can fit (10:00 and 10:45).
    setup = make_setup(app)
    starts = ["10:00", "10:15", "10:30", "10:45"] * 3
    bodies = [
        booking_body(setup, f"2026-03-03T{s}:00-05:00", email=f"p{i}@example.com")
        for i, s in enumerate(starts)
    ]
    with serve(app) as url:
        statuses = _race(url, bodies)
    assert statuses[201] in (1, 2)
    assert statuses[201] + statuses[409] == len(bodies)
    with app.app_context(), get_db().transaction() as session:
        spans = sorted(
            (b.block_start, b.block_end)
            for b in session.scalars(select(Booking).where(Booking.status == "confirmed"))
        )
        claims = session.scalar(select(func.count()).select_from(SlotClaim))
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start
    assert claims == 9 * len(spans)


def _book_in_process(args: tuple[str, int, int, str, str, Any]) -> str:
    url, provider_id, type_id, start, email, barrier = args
    db = Database(url)
    barrier.wait()
    try:
        with db.transaction() as session:
            service.book_appointment(
                session=session,
                provider_id=provider_id,
                appointment_type_id=type_id,
                start=datetime.fromisoformat(start),
                patient={
                    "name": "Racer",
                    "email": email,
                    "time_zone": "UTC",
                    "phone": None,
                    "sms_consent": False,
                },
            )
        return "booked"
    except Conflict:
        return "conflict"
    finally:
        db.dispose()


def _race_processes(url: str, provider_ids: list[int], type_id: int, tz: str) -> Counter[str]:
    """One booking per provider id, each from its own process, all at 10:00 tomorrow in ``tz``."""
    # Spawned, not forked: the session may already run threads (Playwright's) that a fork would copy mid-state.
    # Spawned children do not share a travelled clock, so the slot is tomorrow in real time.
    tomorrow = (datetime.now(ZoneInfo(tz)) + timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(len(provider_ids))
        jobs = [
            (url, provider_id, type_id, tomorrow.isoformat(), f"{i}@x.org", barrier)
            for i, provider_id in enumerate(provider_ids)
        ]
        with context.Pool(len(provider_ids)) as pool:
            return Counter(pool.map(_book_in_process, jobs))


@pytest.mark.slow
def test_same_slot_from_separate_processes(app: Flask, booking_config: Any) -> None:
    setup = make_setup(app, weekdays=tuple(range(7)))
    outcomes = _race_processes(
        booking_config.database_url, [setup.provider_id] * 8, setup.type_id, setup.provider_tz
    )
    assert outcomes == Counter({"booked": 1, "conflict": 7})
    assert _confirmed(app) == 1


def test_reschedule_races_a_new_booking(app: Flask, clock: object) -> None:
    setup = make_setup(app)
    with serve(app) as url:
        first = requests.post(
            f"{url}/api/v1/bookings",
            json=booking_body(setup, "2026-03-03T09:00:00-05:00"),
            headers=STAFF,
            timeout=30,
        ).json()
        barrier = threading.Barrier(2)
        results: dict[str, int] = {}

        def move() -> None:
            barrier.wait()
            results["move"] = requests.post(
                f"{url}/api/v1/bookings/{first['id']}/reschedule",
                json={"start": "2026-03-03T13:00:00-05:00"},
                headers=STAFF,
                timeout=30,
            ).status_code

        def book() -> None:
            barrier.wait()
            results["book"] = requests.post(
                f"{url}/api/v1/bookings",
                json=booking_body(setup, "2026-03-03T13:00:00-05:00", email="rival@example.com"),
                headers=STAFF,
                timeout=30,
            ).status_code

        threads = [threading.Thread(target=move), threading.Thread(target=book)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # Exactly one of them gets 13:00; the loser changes nothing.
    assert sorted(results.values()) in ([200, 409], [201, 409])
    assert _confirmed(app) == (1 if results["move"] == 200 else 2)


def _chair_spans(app: Flask) -> dict[int, list[tuple[datetime, datetime]]]:
    """Each chair's held spans, checked against its claims: every granule of every span, and nothing else."""
    with app.app_context(), get_db().transaction() as session:
        spans: dict[int, list[tuple[datetime, datetime]]] = {}
        for row in session.scalars(select(BookingResource).order_by(BookingResource.start_at)):
            spans.setdefault(row.resource_id, []).append((row.start_at, row.end_at))
        claims = session.scalar(select(func.count()).select_from(ResourceClaim))
    assert claims == sum(
        (end - start) // timedelta(minutes=5) for held in spans.values() for start, end in held
    )
    return spans


def test_one_chair_raced_by_every_provider_over_http(app: Flask, clock: object) -> None:
    # Four providers, each free, all want the clinic's one chair at overlapping times: the chair is held by
    # at most one infusion at any moment, and every loser holds neither its provider nor a chair.
    setup = make_chair_setup(app, providers=4, chairs=1)
    starts = ["10:00", "10:30", "11:00"] * 4
    bodies = [
        chair_body(setup, f"2026-03-03T{at}:00-05:00", i % 4, email=f"c{i}@example.com")
        for i, at in enumerate(starts)
    ]
    with serve(app) as url:
        statuses = _race(url, bodies)
    assert statuses[201] == 1  # 90 minutes of chair each: any two of these overlap
    assert statuses[409] == len(bodies) - 1
    (held,) = _chair_spans(app).values()
    assert len(held) == 1
    with app.app_context(), get_db().transaction() as session:
        assert session.scalar(select(func.count()).select_from(SlotClaim)) == 4  # the winner's 20 minutes


def test_two_chairs_raced_all_day_over_http(app: Flask, clock: object) -> None:
    # Two chairs, three providers, every half hour wanted three times over: however the race goes, no chair
    # is held twice at any moment and every 201 holds a chair.
    setup = make_chair_setup(app, providers=3, chairs=2)
    starts = [f"{h:02d}:{m:02d}" for h in range(9, 13) for m in (0, 30)]
    bodies = [
        chair_body(setup, f"2026-03-03T{at}:00-05:00", p, email=f"d{p}{i}@example.com")
        for i, at in enumerate(starts)
        for p in range(3)
    ]
    with serve(app) as url:
        statuses = _race(url, bodies)
    assert statuses[201] + statuses[409] == len(bodies)
    spans = _chair_spans(app)
    assert sum(len(held) for held in spans.values()) == statuses[201] == _confirmed(app)
    for held in spans.values():
        for (_, end), (start, _) in itertools.pairwise(held):
            assert end <= start


@pytest.mark.slow
def test_one_chair_from_separate_processes(app: Flask, booking_config: Any) -> None:
    # Eight providers in eight processes, one chair: exactly one infusion gets it.
    setup = make_chair_setup(app, providers=8, chairs=1, chair_hours=(time(0), time(23, 55)))
    with app.app_context(), get_db().transaction() as session:
        for provider_id in setup.provider_ids:
            catalog.set_weekly_availability(
                session=session, provider_id=provider_id, rules=[(d, time(0), time(23)) for d in range(7)]
            )
        for chair_id in setup.chair_ids:
            chairs.update_resource(
                session=session,
                resource_id=chair_id,
                changes={"hours": [(d, time(0), time(23, 55)) for d in range(7)]},
            )
    outcomes = _race_processes(
        booking_config.database_url, setup.provider_ids, setup.type_id, setup.provider_tz
    )
    assert outcomes == Counter({"booked": 1, "conflict": 7})
    assert _confirmed(app) == 1
    assert [len(held) for held in _chair_spans(app).values()] == [1]


def _course_race(app: Flask, setup: Any, firsts: list[str]) -> list[requests.Response]:
    """One course booking per first start (its plan made beforehand), all sent at once over HTTP."""
    with serve(app) as url:
        template = requests.post(
            f"{url}/api/v1/course-templates",
            json={
                "clinic_id": setup.clinic_id,
                "slug": "induction",
                "name": "Induction",
                "session_type_id": setup.type_id,
                "sessions": 6,
                "min_hours_between": 24,
                "max_per_week": 3,
            },
            headers=STAFF,
            timeout=30,
        ).json()
        bodies = []
        for n, first in enumerate(firsts):
            provider_id = setup.provider_ids[n % len(setup.provider_ids)]
            plan = requests.post(
                f"{url}/api/v1/courses/plan",
                json={"template_id": template["id"], "start": first, "provider_id": provider_id},
                headers=STAFF,
                timeout=30,
            ).json()
            bodies.append(
                {
                    "template_id": template["id"],
                    "sessions": [{"start": s["start"], "provider_id": provider_id} for s in plan["sessions"]],
                    "patient": {"name": "Racer", "email": f"r{n}@example.com", "time_zone": "UTC"},
                }
            )
        barrier = threading.Barrier(len(bodies))
        answers: list[requests.Response] = []
        lock = threading.Lock()

        def book(body: dict[str, Any]) -> None:
            barrier.wait()
            answer = requests.post(f"{url}/api/v1/courses", json=body, headers=STAFF, timeout=120)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=book, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return answers


def _whole_courses(app: Flask, answers: list[requests.Response]) -> int:
    """Check no course is partial and every loser got a plan; the number of courses booked."""
    won = sum(a.status_code == 201 for a in answers)
    assert won + sum(a.status_code == 409 for a in answers) == len(answers)
    for loser in (a for a in answers if a.status_code == 409):
        assert "plan" in loser.json()
    assert _confirmed(app) == 6 * won
    with app.app_context(), get_db().transaction() as session:
        assert session.scalar(select(func.count()).select_from(Course)) == won
    for held in _chair_spans(app).values():
        for (_, end), (start, _) in itertools.pairwise(held):
            assert end <= start
    return won


def test_courses_racing_for_one_chair_over_http(app: Flask, clock: object) -> None:
    # Eight patients, four providers, one chair, the same six times each: one whole course wins; every other
    # request gets a 409 with a fresh plan and leaves nothing behind (no course, no session, no claim).
    setup = make_chair_setup(app, providers=4, chairs=1)
    answers = _course_race(app, setup, ["2026-03-03T10:00:00-05:00"] * 8)
    assert _whole_courses(app, answers) == 1
    for loser in (a for a in answers if a.status_code == 409):
        assert len(loser.json()["plan"]["sessions"]) == 6
    assert [len(held) for held in _chair_spans(app).values()] == [6]


def test_overlapping_course_plans_over_http(app: Flask, clock: object) -> None:
    # Plans starting half an hour or a day apart contest some times and not others: whatever wins, every
    # course is whole or absent and no chair is held twice.
    setup = make_chair_setup(app, providers=3, chairs=2)
    firsts = [f"2026-03-0{d}T{t}:00-05:00" for d in (3, 4) for t in ("10:00", "10:30", "11:00", "11:30")]
    assert _whole_courses(app, _course_race(app, setup, firsts)) >= 1
