"""Two patients racing for one slot: the database lets exactly one win, on SQLite and PostgreSQL.

The racers are released together by a barrier and go through real HTTP (a threaded server) or through
separate processes with their own connections, so no application lock can be what keeps them apart.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from services.booking import service
from services.booking.models import Booking, Patient, SlotClaim
from shared.db import Database, get_db
from shared.problems import Conflict
from tests.booking.conftest import STAFF
from tests.booking.factories import booking_body, make_setup
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


@pytest.mark.slow
def test_same_slot_from_separate_processes(app: Flask, booking_config: Any) -> None:
    # Spawned, not forked: the session may already run threads (Playwright's) that a fork would copy mid-state.
    # Spawned children do not share a travelled clock, so the slot is tomorrow in real time.
    setup = make_setup(app, weekdays=tuple(range(7)))
    tomorrow = (datetime.now(ZoneInfo(setup.provider_tz)) + timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(8)
        jobs = [
            (
                booking_config.database_url,
                setup.provider_id,
                setup.type_id,
                tomorrow.isoformat(),
                f"{i}@x.org",
                barrier,
            )
            for i in range(8)
        ]
        with context.Pool(8) as pool:
            outcomes = Counter(pool.map(_book_in_process, jobs))
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
