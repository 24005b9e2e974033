"""Check-ins at scale: a day's due check-ins sent, and a provider's timeline over a year of daily ratings.

What is measured:

- ``BENCH_CHECKINS`` (10,000) patients each with a check-in due now: the scheduler's rounds until every
  ``checkin.requested`` event is on notify's queue and recorded in the ledger, on PostgreSQL. Beside it, the
  floor: the same number of jobs of the same size enqueued through RQ in pipelines, with no database at all.
- The timeline page (``GET /timeline/<token>``) of a patient with a year of daily mood and pain ratings and a
  monthly PHQ-9 and GAD-7, under gunicorn (2 workers, 32 connections, ``BENCH_SECONDS``), beside bare Flask.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from typing import Any

import requests
from sqlalchemy import insert

from services.checkins import links, scheduler
from services.checkins.config import CheckinsConfig
from services.checkins.models import COMPLETED, PLANNED, Answer, Checkin, Patient, SessionCopy
from services.checkins.publishing import Publisher
from shared.app import make_redis
from shared.config import load
from shared.db import Database
from shared.links import LinkSigner, new_secret
from shared.queues import NOTIFY_QUEUE, queue
from shared.timeutil import utcnow
from tests.bench.common import bare_flask, gunicorn, servers, table, verdict, wrk

CHECKINS = int(os.environ.get("BENCH_CHECKINS", "10000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARM = min(2, SECONDS)
SEND_TARGET_SECONDS = 60.0
TIMELINE_TARGET_RATIO = 10.0
CHUNK = 2000


def _insert(db: Database, model: Any, rows: list[dict[str, Any]]) -> None:
    with db.transaction() as session:
        for start in range(0, len(rows), CHUNK):
            session.execute(insert(model), rows[start : start + CHUNK])


def _seed_due(db: Database, count: int, bookings: list[uuid.UUID] | None = None) -> None:
    """``count`` patients, each with one session yesterday and its mood check-in due now.

    ``bookings``: the sessions' booking ids (bookings notify knows, so it sends their check-ins); else new ids.
    """
    now = utcnow()
    patients, sessions, checkins = [], [], []
    for n in range(count):
        patient, booking = uuid.uuid4(), bookings[n] if bookings else uuid.uuid4()
        patients.append(
            {
                "id": patient,
                "clinic_slug": "bench",
                "time_zone": "America/New_York",
                "timeline_secret": new_secret(),
            }
        )
        sessions.append(
            {
                "booking_id": booking,
                "version": 1,
                "status": "confirmed",
                "patient_id": patient,
                "type_slug": "infusion-session",
                "type_name": "Infusion session",
                "provider_id": 1,
                "start_at": now - timedelta(days=1, hours=1),
                "end_at": now - timedelta(days=1),
            }
        )
        checkins.append(
            {
                "id": uuid.uuid4(),
                "patient_id": patient,
                "booking_id": booking,
                "booking_version": 1,
                "plan": "ketamine-infusion",
                "plan_step": "mood-day-after",
                "instrument": "mood",
                "due_at": now - timedelta(minutes=1),
                "expires_at": now + timedelta(hours=36),
                "status": PLANNED,
                "link_secret": new_secret(),
                "reminders": 0,
            }
        )
    _insert(db, Patient, patients)
    _insert(db, SessionCopy, sessions)
    _insert(db, Checkin, checkins)


def _send_all(config: CheckinsConfig) -> tuple[float, int]:
    """Scheduler rounds until nothing is left to publish; (seconds, events published)."""
    db = Database(config.database_url)
    publisher = Publisher(
        db=db, redis=make_redis(config.redis_url), signer=LinkSigner(config.link_signing_keys), config=config
    )
    started = time.perf_counter()
    published = 0
    while True:
        counts = scheduler.schedule_once(publisher)
        published += counts["published"]
        if not counts["published"] and not counts["due"]:
            break
    seconds = time.perf_counter() - started
    db.dispose()
    return seconds, published


def _floor(redis_url: str, count: int, body: dict[str, Any]) -> float:
    """Seconds to enqueue ``count`` jobs like the scheduler's through RQ in pipelines, no database."""
    connection = make_redis(redis_url)
    q = queue("bench-floor", connection)
    started = time.perf_counter()
    for start in range(0, count, 5000):
        pipe = connection.pipeline(transaction=False)
        for n in range(start, min(start + 5000, count)):
            q.enqueue_call("tests.bench.bare.index", args=(body,), job_id=f"floor-{n}", pipeline=pipe)
        pipe.execute()
    seconds = time.perf_counter() - started
    for key in connection.scan_iter("rq:job:floor-*"):
        connection.delete(key)
    return seconds


def _seed_year(db: Database, signer: LinkSigner, base_url: str) -> str:
    """A patient with a year of daily mood and pain and monthly questionnaires; return their timeline path."""
    now = utcnow()
    patient = Patient(
        id=uuid.uuid4(), clinic_slug="bench", time_zone="America/New_York", timeline_secret=new_secret()
    )
    booking = uuid.uuid4()
    _insert(
        db, Patient, [{c: getattr(patient, c) for c in ("id", "clinic_slug", "time_zone", "timeline_secret")}]
    )
    sessions = [
        {
            "booking_id": booking if n == 0 else uuid.uuid4(),
            "version": 1,
            "status": "confirmed",
            "patient_id": patient.id,
            "type_slug": "infusion-session",
            "type_name": "Infusion session",
            "provider_id": 1,
            "start_at": now - timedelta(days=365 - 30 * n),
            "end_at": now - timedelta(days=365 - 30 * n, hours=-1),
        }
        for n in range(12)
    ]
    _insert(db, SessionCopy, sessions)
    checkins, answers = [], []
    plan = [("mood", 1, 1), ("pain", 1, 1), ("phq9", 9, 30), ("gad7", 7, 30)]
    for instrument, items, every in plan:
        for day in range(0, 365, every):
            checkin_id = uuid.uuid4()
            at = now - timedelta(days=365 - day)
            values = [(day * 7 + n) % (11 if items == 1 else 4) for n in range(items)]
            checkins.append(
                {
                    "id": checkin_id,
                    "patient_id": patient.id,
                    "booking_id": booking,
                    "booking_version": 1,
                    "plan": "bench",
                    "plan_step": f"{instrument}-{day}",
                    "instrument": instrument,
                    "due_at": at,
                    "expires_at": at + timedelta(days=1),
                    "status": COMPLETED,
                    "link_secret": new_secret(),
                    "reminders": 0,
                    "score": sum(values),
                    "completed_at": at,
                }
            )
            answers += [
                {"checkin_id": checkin_id, "item": n + 1, "value": v, "answered_at": at}
                for n, v in enumerate(values)
            ]
    _insert(db, Checkin, checkins)
    _insert(db, Answer, answers)
    return links.timeline_url(signer, base_url, patient, now).removeprefix(base_url)


def run() -> None:
    """Print the send time of a day's check-ins beside the RQ floor, and the timeline's latency beside bare Flask."""
    with servers("checkins", "checkins_bench") as infra:
        env = {
            "SUITE_ENV": "development",
            "CHECKINS_DATABASE_URL": infra.database_url,
            "REDIS_URL": infra.redis.url,
            "CHECKINS_PUBLIC_URL": "http://checkins.bench",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
        }
        config = load(CheckinsConfig, environ=env)
        db = Database(config.database_url)
        _seed_due(db, CHECKINS)
        seconds, published = _send_all(config)
        sample = queue(NOTIFY_QUEUE, make_redis(config.redis_url)).get_jobs(0, 1)[0].args[0]
        floor = _floor(config.redis_url, CHECKINS, sample)
        path = _seed_year(db, LinkSigner(config.link_signing_keys), config.checkins_public_url)
        db.dispose()
        with bare_flask() as bare:
            wrk(bare + "/", seconds=WARM)
            baseline = wrk(bare + "/", seconds=SECONDS)
        with gunicorn("services.checkins:create_app()", env=env) as base:
            requests.get(base + path, timeout=30).raise_for_status()
            wrk(base + path, seconds=WARM)
            page = wrk(base + path, seconds=SECONDS)
    table(
        f"{CHECKINS:,} check-ins due at once, PostgreSQL: scheduler rounds until all are on notify's queue",
        ["what", "seconds", "events/s"],
        [
            ["RQ enqueue floor (pipelines, no database)", floor, CHECKINS / floor if floor else 0.0],
            ["scheduler (due, publish, ledger)", seconds, published / seconds if seconds else 0.0],
        ],
    )
    table(
        f"Timeline page, a year of daily ratings: 32 connections, 2 gunicorn workers, {SECONDS} s",
        ["endpoint", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors+non2xx"],
        [
            [
                "bare Flask GET (baseline)",
                baseline.rps,
                baseline.p50_ms,
                baseline.p95_ms,
                baseline.p99_ms,
                baseline.errors + baseline.non2xx,
            ],
            [
                "GET /timeline/<token>",
                page.rps,
                page.p50_ms,
                page.p95_ms,
                page.p99_ms,
                page.errors + page.non2xx,
            ],
        ],
    )
    verdict(
        f"every due check-in sent within {SEND_TARGET_SECONDS:.0f} s",
        published == CHECKINS and seconds < SEND_TARGET_SECONDS,
        f"{published} of {CHECKINS} in {seconds:.1f} s (floor {floor:.1f} s)",
    )
    ratio = page.p95_ms / baseline.p95_ms if baseline.p95_ms else 0.0
    verdict(
        f"timeline p95 under {TIMELINE_TARGET_RATIO:.0f}x bare Flask",
        page.requests > 0 and ratio < TIMELINE_TARGET_RATIO and page.errors + page.non2xx == 0,
        f"p95 {page.p95_ms:.1f} ms vs {baseline.p95_ms:.2f} ms ({ratio:.1f}x)",
    )
