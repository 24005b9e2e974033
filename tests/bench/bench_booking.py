"""Booking service under load: slot search and booking creation, beside a bare Flask endpoint.

Everything runs on this machine in one go: a private PostgreSQL and Redis, the booking service and the bare
baseline under gunicorn with the same settings, and wrk with 32 connections. Figures are printed, never asserted.

A second baseline shows where booking creation's floor lies: the bare app sending as many trivial statements, in
one transaction, as a booking sends (counted on this build), through the services' engine settings.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pickle
import random
import time as clock
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import webargs.core
from sqlalchemy import event
from sqlalchemy.orm import Session

from services.booking import create_app, outbox, search, service, views
from services.booking import schemas as booking_schemas
from services.booking.catalog import service as catalog
from services.booking.config import BookingConfig
from services.booking.models import Booking
from shared import app as shared_app
from shared.config import load
from shared.db import Database
from tests.bench.common import POST_JSON, bare_flask, gunicorn, servers, table, verdict, wrk

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = 32
# The deploy default (deploy/gunicorn.conf.py, WEB_CONCURRENCY=2): on this 2-core machine, where PostgreSQL and wrk
# share the cores, more sync workers only add contention (4 gave 1,341 slot searches/s against 1,484 with 2).
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
BOOKING_PROVIDERS = 60
EXISTING_BOOKINGS = 500
STAFF_KEY = "bench-staff-key"
PART_BOOKINGS = int(os.environ.get("BENCH_PART_BOOKINGS", "600"))


def _seed(db: Database) -> tuple[int, int, list[dict[str, object]]]:
    """A provider with 500 bookings over 28 days, and free slots of many providers for the create test."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        clinic = catalog.create_clinic(
            session=session, slug="bench", name="Bench Clinic", time_zone="America/New_York"
        )
        visit = catalog.create_appointment_type(
            session=session,
            clinic_id=clinic.id,
            fields={
                "slug": "visit",
                "name": "Visit",
                "duration_minutes": 20,
                "slot_interval_minutes": 20,
                "mode": "video",
                "reminder_protocol": "video-consultation",
                "horizon_days": 120,
            },
        )
        providers = []
        for n in range(BOOKING_PROVIDERS + 1):
            provider = catalog.create_provider(
                session=session,
                clinic_id=clinic.id,
                name=f"Dr. {n}",
                email=f"dr{n}@bench.example",
                time_zone="America/New_York",
                appointment_type_ids=[visit.id],
            )
            catalog.set_weekly_availability(
                session=session, provider_id=provider.id, rules=[(d, time(8), time(20)) for d in range(7)]
            )
            providers.append(provider)
    searched = providers[0]
    with db.transaction() as session:
        free = search.find_slots(
            session=session,
            provider_id=searched.id,
            appointment_type_id=visit.id,
            start=now + timedelta(days=1),
            end=now + timedelta(days=29),
        )
    step = max(1, len(free) // EXISTING_BOOKINGS)
    for n, start in enumerate(free[::step][:EXISTING_BOOKINGS]):
        with db.transaction() as session:
            service.book_appointment(
                session=session,
                provider_id=searched.id,
                appointment_type_id=visit.id,
                start=start,
                patient={
                    "name": f"P{n}",
                    "email": f"p{n}@bench.example",
                    "time_zone": "UTC",
                    "sms_consent": False,
                },
            )
    bodies: list[dict[str, object]] = []
    with db.transaction() as session:
        for provider in providers[1:]:
            starts = search.find_slots(
                session=session,
                provider_id=provider.id,
                appointment_type_id=visit.id,
                start=now + timedelta(days=1),
                end=now + timedelta(days=60),
            )
            bodies.extend(
                {
                    "provider_id": provider.id,
                    "appointment_type_id": visit.id,
                    "start": s.isoformat(),
                    "patient": {
                        "name": "Bench",
                        "email": f"b{provider.id}-{i}@bench.example",
                        "time_zone": "UTC",
                    },
                }
                for i, s in enumerate(starts)
            )
    # Interleave providers, as real traffic would; one provider's changes queue on its row at commit.
    random.Random(7).shuffle(bodies)
    return searched.id, visit.id, bodies


Sent = list[tuple[str, Any]]  # a booking's statements as the driver got them: (SQL, parameters)


def _statements_per_booking(env: dict[str, str], bodies: list[dict[str, object]]) -> Sent:
    """The statements a booking usually sends to the database (BEGIN and COMMIT aside), caches warm.

    ``bodies`` are one provider's, by start: the first two warm the caches, the rest are recorded one by one, and
    a booking with the most common count is the answer (one that loads another month's hours sends two more).
    """
    app = create_app(load(BookingConfig, environ=env))
    client = app.test_client()
    engine = app.extensions["db"].engine
    seen: dict[int, Sent] = {}
    counts: Counter[int] = Counter()
    sent: Sent = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    for n, body in enumerate(bodies):
        if n == 2:
            event.listen(engine, "before_cursor_execute", record)
        sent = []
        response = client.post(
            "/api/v1/bookings", json=body, headers={"Authorization": f"Bearer {STAFF_KEY}"}
        )
        assert response.status_code == 201, response.get_json()
        if n >= 2:
            counts[len(sent)] += 1
            seen.setdefault(len(sent), sent)
    event.remove(engine, "before_cursor_execute", record)
    engine.dispose()
    return seen[counts.most_common(1)[0][0]]


# The steps of a booking whose process CPU is summed in-process (docs/performance.md, part 3): (owner, name, label).
# Each is looked up by name when called, so wrapping the attribute measures every call; the hooks are wrapped
# before the app is built, as Flask keeps the function objects it was given.
_PARTS: tuple[tuple[Any, str, str], ...] = (
    (shared_app, "_start_request", "before request: correlation id, input check (reads the body)"),
    (webargs.core.Parser, "parse", "request load (webargs, marshmallow)"),
    (service, "_resolve", "offer query (ORM, one round trip) and hours check"),
    (service, "_insert_booking", "patient and booking inserts"),
    (service, "_hold", "slot claims insert"),
    (outbox, "record_event", "outbox row (snapshot, event dump, insert)"),
    (service, "bump_schedule", "schedule_version bump"),
    (Session, "commit", "commit"),
    (views, "_Presented", "manage link (signed) and presentation"),
    (booking_schemas.BookingOut, "dump", "response dump (marshmallow)"),
    (shared_app, "_finish_request", "after request: metrics, log"),
)


@contextlib.contextmanager
def _timed_parts(spent: defaultdict[str, float]) -> Iterator[None]:
    """Sum the process CPU spent in each of ``_PARTS`` into ``spent``, while inside."""

    def timed(label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += clock.process_time() - started

        return wrapper

    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in _PARTS]
    try:
        for (owner, name, label), (_, _, original) in zip(_PARTS, originals, strict=True):
            setattr(owner, name, timed(label, original))
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _cpu_parts(env: dict[str, str], bodies: list[dict[str, object]]) -> list[list[object]]:
    """Process CPU per booking, whole and by step, booking ``bodies`` in-process (the first 100 warm up)."""
    spent: defaultdict[str, float] = defaultdict(float)
    with _timed_parts(spent):
        app = create_app(load(BookingConfig, environ=env))
        client = app.test_client()
        headers = {"Authorization": f"Bearer {STAFF_KEY}"}
        for n, body in enumerate(bodies):
            if n == 100:
                spent.clear()
                started = clock.process_time()
            response = client.post("/api/v1/bookings", json=body, headers=headers)
            assert response.status_code == 201, response.get_json()
        whole = clock.process_time() - started
    app.extensions["db"].engine.dispose()
    booked = len(bodies) - 100
    rows: list[list[object]] = [
        ["whole request (test client included)", f"{whole / booked * 1000:.3f}", "100%"]
    ]
    for _, _, label in _PARTS:
        rows.append([label, f"{spent[label] / booked * 1000:.3f}", f"{spent[label] / whole:.0%}"])
    rest = whole - sum(spent.values())
    rows.append(
        [
            "rest: Flask, werkzeug, smorest, session upkeep",
            f"{rest / booked * 1000:.3f}",
            f"{rest / whole:.0%}",
        ]
    )
    return rows


def _post_lua(bodies_path: str) -> str:
    # Each wrk thread walks its own stride of the body list, so no two requests ask for the same slot.
    return f"""
local bodies = {{}}
for line in io.lines("{bodies_path}") do bodies[#bodies + 1] = line end
local threads = {{}}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  n = id
  stride = 2  -- wrk threads (-t2)
end
function request()
  local body = bodies[(n % #bodies) + 1]
  n = n + stride
  return wrk.format("POST", "/api/v1/bookings", {{
    ["Content-Type"] = "application/json", ["Authorization"] = "Bearer {STAFF_KEY}"}}, body)
end
"""


def run() -> None:
    """Measure and print."""
    with servers("booking", "booking") as running:
        url, redis, workdir = running.database_url, running.redis, running.workdir
        db = Database(url)
        provider_id, type_id, bodies = _seed(db)
        provider_ids = sorted({int(str(b["provider_id"])) for b in bodies})
        db.dispose()
        # Booked in-process to count a booking's statements (one provider's, by start); wrk never sends them.
        chosen = bodies[-1]["provider_id"]
        counted = sorted((b for b in bodies if b["provider_id"] == chosen), key=lambda b: str(b["start"]))[
            :12
        ]
        bodies = [b for b in bodies if b not in counted]
        bodies_path = os.path.join(workdir, "bodies.txt")
        with open(bodies_path, "w") as handle:
            handle.writelines(json.dumps(b) + "\n" for b in bodies)

        env = {
            "BOOKING_DATABASE_URL": url,
            "REDIS_URL": redis.url,
            "API_KEYS": STAFF_KEY,
            "LOG_LEVEL": "WARNING",
        }
        recorded = _statements_per_booking(env, counted)
        statements = len(recorded)
        replay_path = os.path.join(workdir, "booking-statements.pickle")
        with open(replay_path, "wb") as handle:
            pickle.dump(recorded, handle)
        now = datetime.now(UTC)
        slot_path = (
            f"/api/v1/slots?provider_id={provider_id}&appointment_type_id={type_id}"
            f"&start={(now + timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
            f"&end={(now + timedelta(days=29)).strftime('%Y-%m-%dT%H:%M:%SZ')}&tz=Europe/London"
        )
        floor_env = {
            "BARE_DATABASE_URL": url,
            "BARE_STATEMENTS": str(statements),
            "BARE_REPLAY": replay_path,
            "BARE_PROVIDERS": ",".join(str(p) for p in provider_ids),
        }
        with bare_flask(workers=WORKERS, env=floor_env) as bare:
            bare_get = wrk(bare + "/", seconds=SECONDS, connections=CONNECTIONS)
            bare_post = wrk(
                bare + "/",
                seconds=SECONDS,
                connections=CONNECTIONS,
                lua=POST_JSON,
            )
            floor = wrk(bare + "/db", seconds=SECONDS, connections=CONNECTIONS, lua=POST_JSON)
            writes = wrk(bare + "/db/writes", seconds=SECONDS, connections=CONNECTIONS, lua=POST_JSON)
        db = Database(url)
        with db.transaction() as session:
            before = session.query(Booking).count()  # the seed's, the counted ones and the floor's replays
        with gunicorn("services.booking:create_app()", env=env, workers=WORKERS) as base:
            slots = wrk(base + slot_path, seconds=SECONDS, connections=CONNECTIONS)
            create = wrk(
                base + "/api/v1/bookings",
                seconds=SECONDS,
                connections=CONNECTIONS,
                lua=_post_lua(bodies_path),
            )

        with db.transaction() as session:
            created = session.query(Booking).count() - before
        db.dispose()

        print(
            f"\nBooking service vs bare Flask: gunicorn {WORKERS} sync workers each, PostgreSQL, "
            f"wrk {CONNECTIONS} connections x {SECONDS} s; slot search over 28 days with {EXISTING_BOOKINGS} bookings"
        )
        table(
            "",
            ["endpoint", "req/s", "p50 ms", "p95 ms", "p99 ms", "non-2xx", "errors", "vs bare"],
            [
                [
                    "bare GET /",
                    bare_get.rps,
                    bare_get.p50_ms,
                    bare_get.p95_ms,
                    bare_get.p99_ms,
                    bare_get.non2xx,
                    bare_get.errors,
                    "1.00",
                ],
                [
                    "bare POST /",
                    bare_post.rps,
                    bare_post.p50_ms,
                    bare_post.p95_ms,
                    bare_post.p99_ms,
                    bare_post.non2xx,
                    bare_post.errors,
                    "1.00",
                ],
                [
                    f"floor POST: {statements} x SELECT 1",
                    floor.rps,
                    floor.p50_ms,
                    floor.p95_ms,
                    floor.p99_ms,
                    floor.non2xx,
                    floor.errors,
                    f"{floor.rps / bare_post.rps:.2f}",
                ],
                [
                    "floor POST: its writes, bare",
                    writes.rps,
                    writes.p50_ms,
                    writes.p95_ms,
                    writes.p99_ms,
                    writes.non2xx,
                    writes.errors,
                    f"{writes.rps / bare_post.rps:.2f}",
                ],
                [
                    "GET slots (28 days)",
                    slots.rps,
                    slots.p50_ms,
                    slots.p95_ms,
                    slots.p99_ms,
                    slots.non2xx,
                    slots.errors,
                    f"{slots.rps / bare_get.rps:.2f}",
                ],
                [
                    "POST booking",
                    create.rps,
                    create.p50_ms,
                    create.p95_ms,
                    create.p99_ms,
                    create.non2xx,
                    create.errors,
                    f"{create.rps / bare_post.rps:.2f}",
                ],
            ],
        )
        print(
            f"  floor: the bare app sending a booking's {statements} statements in one transaction, doing nothing "
            f"else; booking creation reaches {create.rps / floor.rps:.2f} of it"
        )
        print(
            f"  its writes, bare: the same {statements} statements a booking sent, replayed with fresh keys and"
            " times through the driver (the database's real work: indexes, foreign keys, JSONB), nothing else;"
            f" booking creation reaches {create.rps / writes.rps:.2f} of it"
        )
        print(
            f"  bookings created during the run: {created} (every 201 is one row; non-2xx would be lost slots)"
        )
        # In-process, after wrk (from the far end of the shuffled bodies, which wrk never reaches), so it does
        # not share the cores with the runs above.
        parts = _cpu_parts(env, bodies[-(100 + PART_BOOKINGS) :])
        table(
            f"Where an in-process booking's CPU goes ({PART_BOOKINGS} bookings, process time per booking)",
            ["part", "ms", "share"],
            parts,
        )
        verdict("slot search p95 < 20 ms", slots.p95_ms < 20, f"{slots.p95_ms:.1f} ms")
        verdict("booking p95 < 50 ms", create.p95_ms < 50, f"{create.p95_ms:.1f} ms")
        verdict(
            "booking throughput >= 1/4 of bare",
            create.rps >= bare_post.rps / 4,
            f"{create.rps:.0f} vs {bare_post.rps:.0f} req/s ({create.rps / bare_post.rps:.2f})",
        )
