"""Two-way SMS under a burst: 1,000 patients reply C at once (signed, some retried by "Twilio").

A private PostgreSQL and Redis; notify's web app under gunicorn (the inbound webhook), ``BENCH_WORKERS``
booking worker processes (``flask --app services.booking worker``) and the notify dispatcher. Each patient has
one booking whose day-before reminder asked for a reply (planned as the planner and the sender leave them).
``BENCH_REPLIES`` signed inbound webhooks go at once from 16 threads, a tenth of them sent twice with the same
MessageSid (a Twilio retry). Measured: from each webhook's POST until the booking's attendance row says
confirmed (its ``updated_at``). Baseline in the same run, through the same booking worker processes: one RQ
no-op job, enqueue -> result. Checked: every reply processed once (one reply row, one event, one attendance).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Worker
from rq.job import Job
from sqlalchemy import func, insert, select
from twilio.request_validator import RequestValidator

from services.booking.models import Attendance, Patient, ProcessedEvent
from services.booking.models import Booking as BookingRow
from services.notify.models import SENT, BookingCopy, Message, SmsReply
from shared import events
from shared.db import Database
from shared.migrate import upgrade
from shared.queues import BOOKING_QUEUE, queue
from tests.bench.bench_notify import seed_booking
from tests.bench.common import gunicorn, table, verdict
from tests.notify.factories import Booking
from tests.support.servers import PostgresServer, RedisServer, wait_until

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).parent / "flask")
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
REPLIES = int(os.environ.get("BENCH_REPLIES", "1000"))
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
PUBLIC = "https://notify.bench.test"
_SNAPSHOT = events.BookingSnapshotSchema()


def noop() -> None:
    """The job of the RQ baseline."""


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def seed(notify_db: Database, booking_db: Database, count: int, now: datetime) -> list[tuple[uuid.UUID, str]]:
    """``count`` bookings in both services, each with a sent reminder that asked for a reply."""
    provider_id, type_id = seed_booking(booking_db)
    start = now + timedelta(hours=20)
    made, patients, bookings, copies, sent = [], [], [], [], []
    for n in range(count):
        phone = f"+1555{n:07d}"
        fake = Booking(start=start + timedelta(minutes=15 * n), phone=phone)
        made.append((fake.id, phone))
        patients.append(
            {"id": fake.patient_id, "clinic_id": 1, "name": "Bench Patient", "phone": phone, "email": f"p{n}@bench.example",
             "email_key": f"p{n}@bench.example", "time_zone": "UTC", "sms_consent": True, "created_at": now, "updated_at": now}
        )  # fmt: skip
        bookings.append(
            {"id": fake.id, "clinic_id": 1, "provider_id": provider_id, "appointment_type_id": type_id,
             "patient_id": fake.patient_id, "status": "confirmed", "start_at": fake.start, "end_at": fake.end,
             "block_start": fake.start, "block_end": fake.end, "version": 1, "created_at": now, "updated_at": now}
        )  # fmt: skip
        copies.append(
            {"id": fake.id, "version": 1, "status": "confirmed", "start_at": fake.start, "end_at": fake.end,
             "protocol": "video-consultation", "provider_id": provider_id, "changed_at": now,
             "snapshot": {**_SNAPSHOT.dump(fake.snapshot()), "previous_start": None, "cancelled_by": None},
             "updated_at": now}
        )  # fmt: skip
        sent.append(
            {"booking_id": fake.id, "booking_version": 1, "step": "reminder-24h", "channel": "sms",
             "protocol": "video-consultation", "protocol_version": 2, "urgent": False, "due_at": now,
             "expires_at": fake.start, "status": SENT, "reason": "", "attempts": 1, "recipient": phone,
             "sent_at": now, "created_at": now, "updated_at": now}
        )  # fmt: skip
    with booking_db.transaction() as session:
        session.execute(insert(Patient), patients)
        session.execute(insert(BookingRow), bookings)
    with notify_db.transaction() as session:
        session.execute(insert(BookingCopy), copies)
        session.execute(insert(Message), sent)
    return made


@contextmanager
def booking_workers(env: dict[str, str], redis: Redis, logs: Path) -> Iterator[None]:
    """The booking worker processes, as the Procfile runs them."""
    with logs.open("ab") as log:
        procs = [
            subprocess.Popen([FLASK, "--app", "services.booking", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log)
            for _ in range(WORKERS)
        ]  # fmt: skip
    try:
        wait_until(lambda: len(Worker.all(connection=redis)) >= WORKERS, timeout=60, what="booking workers")
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def rq_round_trip(redis: Redis, samples: int = 100) -> list[float]:
    """Seconds from enqueueing one no-op job on the booking queue to its result, one job at a time."""
    q = queue(BOOKING_QUEUE, redis)
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        job = q.enqueue_call("tests.bench.bench_replies.noop", description="noop")
        if Job.fetch(job.id, connection=redis, serializer=q.serializer).latest_result(timeout=10) is None:
            raise RuntimeError("a no-op job did not finish")
        out.append(time.perf_counter() - started)
    return out


def _post(url: str, phone: str, sid: str) -> float:
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32, "From": phone,
            "To": "+17185550199", "Body": "C", "NumMedia": "0", "ApiVersion": "2010-04-01"}  # fmt: skip
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/webhooks/twilio/inbound", form)
    sent_at = time.time()
    response = requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=30)
    if response.status_code != 200 or "confirmed" not in response.text:
        raise RuntimeError(f"inbound webhook answered {response.status_code}")
    return sent_at


def burst(base: str, made: list[tuple[uuid.UUID, str]]) -> dict[uuid.UUID, float]:
    """Post every reply at once (a tenth twice, same MessageSid); when each booking's first POST went."""
    url = base + "/webhooks/twilio/inbound"
    calls = [(booking_id, phone, f"SM{uuid.uuid4().hex}") for booking_id, phone in made]
    calls += calls[::10]
    first: dict[uuid.UUID, float] = {}
    with ThreadPoolExecutor(max_workers=16) as pool:
        for (booking_id, _, _), sent_at in zip(
            calls, pool.map(lambda c: _post(url, c[1], c[2]), calls), strict=True
        ):
            first[booking_id] = min(first.get(booking_id, sent_at), sent_at)
    return first


def settle(notify_db: Database, booking_db: Database, first: dict[uuid.UUID, float]) -> dict[str, Any]:
    """Wait until every booking is confirmed; latencies and the counts that say "processed once"."""

    def confirmed() -> int:
        with booking_db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(Attendance)) or 0)

    wait_until(lambda: confirmed() >= len(first), timeout=600, what="attendance confirmed", interval=0.2)
    time.sleep(2)  # anything doubled would show by now
    with booking_db.transaction() as session:
        rows = session.execute(select(Attendance.booking_id, Attendance.updated_at, Attendance.state)).all()
        handled = int(session.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)
    with notify_db.transaction() as session:
        replies = int(session.scalar(select(func.count()).select_from(SmsReply)) or 0)
    latency = [row.updated_at.timestamp() - first[row.booking_id] for row in rows]
    states = {row.state for row in rows}
    return {
        "latency": latency,
        "attendance": len(rows),
        "handled": handled,
        "replies": replies,
        "states": states,
    }


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-replies-") as workdir:
        postgres = PostgresServer()
        redis_server = RedisServer(Path(workdir))
        postgres.start()
        redis_server.start()
        try:
            _run(postgres, redis_server, Path(workdir))
        finally:
            redis_server.stop()
            postgres.stop()


def _run(postgres: PostgresServer, redis_server: RedisServer, workdir: Path) -> None:
    redis = redis_server.client()
    for name in ("notify", "booking"):
        postgres.execute(f"CREATE DATABASE {name}")
        upgrade(service=name, url=postgres.url(name))
    notify_db, booking_db = Database(postgres.url("notify")), Database(postgres.url("booking"))
    made = seed(notify_db, booking_db, REPLIES, datetime.now(UTC))
    common = {**os.environ, "SUITE_ENV": "development", "LOG_LEVEL": "WARNING", "REDIS_URL": redis_server.url}
    booking_env = {**common, "BOOKING_DATABASE_URL": postgres.url("booking")}
    notify_env = {**common, "NOTIFY_DATABASE_URL": postgres.url("notify"), "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                  "NOTIFY_PUBLIC_URL": PUBLIC}  # fmt: skip
    with booking_workers(booking_env, redis, workdir / "booking.log"):
        baseline = rq_round_trip(redis)
        with gunicorn("services.notify:create_app()", env=notify_env, workers=2) as notify_url:
            first = burst(notify_url, made)
        results = settle(notify_db, booking_db, first)
    notify_db.dispose()
    booking_db.dispose()
    _report(results, baseline)


def _report(results: dict[str, Any], baseline: list[float]) -> None:
    latency = [1000 * x for x in results["latency"]]
    trip = [1000 * x for x in baseline]
    print(
        f"\n{REPLIES:,} patients reply C at once (+{len(range(0, REPLIES, 10))} Twilio retries); {WORKERS} booking workers"
    )
    table(
        "Webhook POST -> booking attendance confirmed (milliseconds)",
        ["path", "p50", "p95", "max", "mean"],
        [
            ["reply -> notify -> event -> booking worker", _pct(latency, 50), _pct(latency, 95), max(latency), statistics.mean(latency)],
            ["baseline: one RQ no-op job, enqueue -> result", _pct(trip, 50), _pct(trip, 95), max(trip), statistics.mean(trip)],
        ],
    )  # fmt: skip
    once = results["attendance"] == results["handled"] == results["replies"] == REPLIES
    verdict(
        "every reply processed once",
        once and results["states"] == {"confirmed"},
        f"{results['replies']} reply rows, {results['handled']} events handled, {results['attendance']} confirmed",
    )
