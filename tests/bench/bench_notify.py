"""Notify under load: 10,000 reminders due in the same minute, and a booking's confirmation latency.

Everything runs here in one go, as in production but on one machine: a private PostgreSQL and Redis, the notify
dispatcher and ``BENCH_WORKERS`` notify worker processes (``flask --app services.notify worker``, RQ's
SimpleWorker), and a local Twilio stand-in (tests/support/twilio_standin.py) that answers Message creates as
Twilio would, only faster. Baselines from the same run, with the same worker processes: raw RQ throughput of
no-op jobs, and the round trip of one no-op job. Quiet hours are off (the bench may run at night in London).

1. 10,000 SMS reminders planned in the database, all due at the same instant T0: seconds from T0 until the
   stand-in has received all of them, in batched send jobs (the default) and in one job per message.
2. 200 bookings made one after another through the booking service (gunicorn) with the outbox relay running:
   from each booking's commit (its POST answered) until its confirmation SMS reaches the stand-in.
3. 100,000 upcoming reminders planned for next week: the cost of a dispatcher pass, and what Redis holds.
4. What one booking costs notify's handlers, in-process with warm caches: statements and CPU per booking event,
   per consult ``links_ready`` and per booking's send jobs, as events per second beside RQ's no-op jobs.
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
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Worker
from rq.job import Job
from rq.registry import FinishedJobRegistry
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, insert, select

from services.booking.catalog import service as catalog
from services.notify import create_app, jobs
from services.notify.config import NotifyConfig
from services.notify.dispatch import dispatch_once
from services.notify.models import QUEUED, BookingCopy, Message
from services.notify.runtime import SEND_QUEUE
from shared import events
from shared.config import load
from shared.db import Database
from shared.migrate import upgrade
from shared.queues import queue
from tests.bench.common import gunicorn, table, verdict
from tests.notify.factories import Booking
from tests.support.servers import PostgresServer, RedisServer, wait_until
from tests.support.twilio_standin import StandIn, running_standin

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).parent / "flask")
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
REMINDERS = int(os.environ.get("BENCH_REMINDERS", "10000"))
NOOP_JOBS = int(os.environ.get("BENCH_NOOP_JOBS", "3000"))
BOOKINGS = int(os.environ.get("BENCH_BOOKINGS", "200"))
UPCOMING = int(os.environ.get("BENCH_UPCOMING", "100000"))
STAFF_KEY = "bench-staff-key"
TARGET_SECONDS = 60.0
TARGET_P95 = 2.0
_SNAPSHOT = events.BookingSnapshotSchema()


def noop() -> None:
    """The job of the RQ baseline."""


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _notify_env(database_url: str, redis_url: str, standin: StandIn, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SUITE_ENV": "development",
        "LOG_LEVEL": "WARNING",
        "NOTIFY_DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "NOTIFY_SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "bench-auth-token",
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
        "TWILIO_API_BASE_URL": standin.url,
        "NOTIFY_QUIET_HOURS": "",
        **extra,
    }


@contextmanager
def notify_processes(env: dict[str, str], redis: Redis, logs: Path) -> Iterator[None]:
    """The dispatcher and the worker processes, as the Procfile runs them (their logs go to ``logs``)."""
    for worker in Worker.all(connection=redis):
        worker.register_death()
    with logs.open("ab") as log:
        procs = [
            subprocess.Popen(
                [FLASK, "--app", "services.notify", command], cwd=ROOT, env=env, stdout=log, stderr=log
            )
            for command in ["worker"] * WORKERS + ["dispatcher"]
        ]
    try:
        wait_until(lambda: len(Worker.all(connection=redis)) >= WORKERS, timeout=60, what="notify workers")
        time.sleep(1)
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def rq_noop_throughput(redis: Redis) -> float:
    """No-op jobs per second through the same worker processes."""
    q = queue(SEND_QUEUE, redis)
    finished = FinishedJobRegistry(queue=q)
    before = finished.count
    started = time.perf_counter()
    pipe = redis.pipeline(transaction=False)
    for _ in range(NOOP_JOBS):
        q.enqueue_call("tests.bench.bench_notify.noop", pipeline=pipe, description="noop")
    pipe.execute()
    wait_until(lambda: finished.count - before >= NOOP_JOBS, timeout=600, what="no-op jobs", interval=0.05)
    return NOOP_JOBS / (time.perf_counter() - started)


def rq_round_trip(redis: Redis, samples: int = 100) -> list[float]:
    """Seconds from enqueueing one no-op job to its result, one job at a time."""
    q = queue(SEND_QUEUE, redis)
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        job = q.enqueue_call("tests.bench.bench_notify.noop", description="noop")
        if Job.fetch(job.id, connection=redis, serializer=q.serializer).latest_result(timeout=10) is None:
            raise RuntimeError("a no-op job did not finish")
        out.append(time.perf_counter() - started)
    return out


def plan_due_reminders(db: Database, count: int, due_at: datetime, prefix: int) -> None:
    """``count`` bookings, each with its 24 h SMS reminder due at ``due_at`` (as the planner leaves them)."""
    start = due_at + timedelta(hours=24)
    copies, rows = [], []
    for n in range(count):
        booking = Booking(start=start, phone=f"+1{prefix:03d}{n:07d}", sms_consent=True)
        copies.append(
            {
                "id": booking.id,
                "version": 1,
                "status": "confirmed",
                "start_at": booking.start,
                "end_at": booking.end,
                "protocol": "video-consultation",
                "provider_id": booking.provider.id,
                "changed_at": due_at - timedelta(days=3),
                "snapshot": {
                    **_SNAPSHOT.dump(booking.snapshot()),
                    "previous_start": None,
                    "cancelled_by": None,
                },
                "updated_at": due_at,
            }
        )
        rows.append(
            {
                "booking_id": booking.id,
                "booking_version": 1,
                "step": "reminder-24h",
                "channel": "sms",
                "protocol": "video-consultation",
                "protocol_version": 1,
                "urgent": False,
                "due_at": due_at,
                "expires_at": booking.start,
                "status": "planned",
                "reason": "",
                "attempts": 0,
                "created_at": due_at,
                "updated_at": due_at,
            }
        )
    with db.transaction() as session:
        for chunk in range(0, count, 1000):
            session.execute(insert(BookingCopy), copies[chunk : chunk + 1000])
            session.execute(insert(Message), rows[chunk : chunk + 1000])


def handler_costs(env: dict[str, str], rounds: int = 40) -> dict[str, tuple[float, float, float]]:
    """Median statements, CPU milliseconds and RQ jobs per booking for each handler (the last ``rounds`` of
    2x that), and their sum per booking."""
    app = create_app(load(NotifyConfig, environ=env))
    runtime = app.extensions["notify"]
    sent: list[int] = []
    sqlalchemy_event.listen(runtime.db.engine, "before_cursor_execute", lambda *_: sent.append(1))
    costs: dict[str, list[tuple[int, float, int]]] = {"booking event": [], "links_ready": [], "send jobs": []}
    start = datetime.now(UTC) + timedelta(days=3)
    with app.app_context():
        for n in range(2 * rounds):
            booking = Booking(start=start + timedelta(minutes=n), phone=f"+1415{n:07d}")
            now = datetime.now(UTC)
            for name, handle, payload in (
                ("booking event", jobs.handle_booking_event, booking.confirmed(at=now)),
                ("links_ready", jobs.handle_links_ready, booking.links_ready(at=now)),
                ("send jobs", _send_each, None),
            ):
                args, count = (payload, 1) if payload is not None else _queued(runtime.db, booking.id)
                sent.clear()
                cpu = time.process_time()
                handle(args)
                if n >= rounds:
                    costs[name].append((len(sent), 1000 * (time.process_time() - cpu), count))
    runtime.db.dispose()
    medians = {
        name: (
            statistics.median(c for c, _, _ in rows),
            statistics.median(ms for _, ms, _ in rows),
            statistics.median(j for _, _, j in rows),
        )
        for name, rows in costs.items()
    }
    statements, cpu, job_count = zip(*medians.values(), strict=True)
    medians["per booking"] = (sum(statements), sum(cpu), sum(job_count))
    return medians


def _queued(db: Database, booking_id: uuid.UUID) -> tuple[list[list[int]], int]:
    """The booking's queued messages grouped by the send job that carries them, and how many jobs."""
    with db.transaction() as session:
        rows = session.execute(
            select(Message.id, Message.job_id).where(
                Message.booking_id == booking_id, Message.status == QUEUED
            )
        ).all()
    by_job: dict[str | None, list[int]] = {}
    for row in rows:
        by_job.setdefault(row.job_id, []).append(row.id)
    return list(by_job.values()), len(by_job)


def _send_each(batches: list[list[int]]) -> None:
    """Each send job's messages in a call of their own, as the workers take them."""
    for ids in batches:
        jobs.send_messages(ids)


def _unsent(db: Database) -> str:
    """Notify's plan for the messages not sent yet: how many by status, attempts and reason."""
    with db.transaction() as session:
        rows = session.execute(
            select(Message.status, Message.attempts, Message.reason, func.count())
            .where(Message.status != "sent")
            .group_by(Message.status, Message.attempts, Message.reason)
        ).all()
    return "unsent in notify's plan: " + (
        "; ".join(
            f"{n} {status} after {attempts} attempts ({reason or 'no reason'})"
            for status, attempts, reason, n in rows
        )
        or "none"
    )


def reminder_run(db: Database, standin: StandIn, prefix: int) -> dict[str, float]:
    """Plan REMINDERS due a few seconds from now; time them out to the stand-in."""
    seen = standin.count()
    due_at = datetime.now(UTC) + timedelta(seconds=8)
    plan_due_reminders(db, REMINDERS, due_at, prefix)
    deadline = time.time() + 300
    while time.time() < deadline and standin.count() - seen < REMINDERS:
        time.sleep(0.25)
    if standin.count() - seen < REMINDERS:
        # A send whose answer was lost stays `sending` for NOTIFY_SENDING_STALE_SECONDS (300), is then checked
        # with the provider and sent again if it never arrived: say what the plan holds, and wait for that too.
        print(f"  after 5 minutes {standin.count() - seen} of {REMINDERS} arrived; {_unsent(db)}", flush=True)
        deadline = time.time() + 420
        while time.time() < deadline and standin.count() - seen < REMINDERS:
            time.sleep(1)
    arrived = standin.messages(since=seen)
    if len(arrived) < REMINDERS:
        raise RuntimeError(
            f"only {len(arrived)} of {REMINDERS} reminders arrived in 12 minutes; {_unsent(db)}"
        )
    t0 = due_at.timestamp()
    first = min(m["received_at"] for m in arrived)
    last = max(m["received_at"] for m in arrived)
    to = [m["to"] for m in arrived]
    return {
        "total": last - t0,
        "first": first - t0,
        "sending": last - first,
        "rate": REMINDERS / max(last - first, 1e-9),
        "doubles": len(to) - len(set(to)),
    }


def idle_upcoming(db: Database, redis: Redis, env: dict[str, str]) -> dict[str, Any]:
    """UPCOMING reminders planned for the weeks ahead: what a dispatcher pass costs, what Redis holds."""
    memory_before = int(redis.info("memory")["used_memory"])
    keys_before = int(redis.dbsize())
    due_at = datetime.now(UTC) + timedelta(days=7)
    for chunk in range(0, UPCOMING, 10_000):
        count = min(10_000, UPCOMING - chunk)
        plan_due_reminders(db, count, due_at + timedelta(minutes=chunk // 1000), prefix=400 + chunk // 10_000)
    time.sleep(6)  # at least one pass of the running dispatcher
    app = create_app(load(NotifyConfig, environ=env))
    runtime = app.extensions["notify"]
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        report = dispatch_once(runtime)
        timings.append(1000 * (time.perf_counter() - started))
        if report.enqueued:
            raise RuntimeError("nothing should be due")
    runtime.db.dispose()
    return {
        "upcoming": UPCOMING,
        "pass_ms": statistics.median(timings),
        "keys": int(redis.dbsize()) - keys_before,
        "memory_kib": (int(redis.info("memory")["used_memory"]) - memory_before) / 1024,
    }


def seed_booking(db: Database) -> tuple[int, int]:
    """A provider open around the clock for 15-minute video visits."""
    from datetime import time as clock

    with db.transaction() as session:
        clinic = catalog.create_clinic(
            session=session, slug="demo-clinic", name="Bench Clinic", time_zone="UTC"
        )
        visit = catalog.create_appointment_type(
            session=session,
            clinic_id=clinic.id,
            fields={
                "slug": "video",
                "name": "Video consultation",
                "duration_minutes": 15,
                "slot_interval_minutes": 15,
                "mode": "video",
                "reminder_protocol": "video-consultation",
                "horizon_days": 60,
            },
        )
        provider = catalog.create_provider(
            session=session,
            clinic_id=clinic.id,
            name="Dr. Bench",
            email="dr@bench.example",
            time_zone="UTC",
            appointment_type_ids=[visit.id],
        )
        catalog.set_weekly_availability(
            session=session, provider_id=provider.id, rules=[(d, clock(0), clock(23, 45)) for d in range(7)]
        )
        return provider.id, visit.id


def confirmation_latency(booking_url: str, standin: StandIn, provider_id: int, type_id: int) -> list[float]:
    """Seconds from each booking's answered POST to its confirmation SMS at the stand-in."""
    # Three days out, from midnight UTC: their 24-hour reminders fall due a day or more from now, never during the
    # idle phase that follows (which requires nothing to be due), whatever the hour the benchmark runs at.
    first_start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    session = requests.Session()
    committed: dict[str, float] = {}
    seen = standin.count()
    for n in range(BOOKINGS):
        phone = f"+1415555{2000 + n:04d}"
        body: dict[str, Any] = {
            "provider_id": provider_id,
            "appointment_type_id": type_id,
            "start": (first_start + timedelta(minutes=30 * n)).isoformat(),
            "patient": {
                "name": "Bench Patient",
                "email": f"p{n}@bench.example",
                "phone": phone,
                "time_zone": "Europe/London",
                "sms_consent": True,
            },
        }
        answer = session.post(
            f"{booking_url}/api/v1/bookings",
            json=body,
            headers={"Authorization": f"Bearer {STAFF_KEY}", "Idempotency-Key": str(uuid.uuid4())},
            timeout=30,
        )
        committed[phone] = time.time()
        answer.raise_for_status()
        time.sleep(0.05)
    wait_until(
        lambda: len({m["to"] for m in standin.messages(since=seen)} & committed.keys()) >= BOOKINGS,
        timeout=120,
        what="confirmations",
        interval=0.2,
    )
    arrived = {
        m["to"]: m["received_at"] for m in standin.messages(since=seen) if "is booked for" in m["body"]
    }
    return [arrived[phone] - at for phone, at in committed.items()]


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as workdir:
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
    notify_db = Database(postgres.url("notify"))
    booking_db = Database(postgres.url("booking"))
    results: dict[str, Any] = {}
    with running_standin() as standin:
        batched = _notify_env(postgres.url("notify"), redis_server.url, standin)
        logs = workdir / "notify.log"
        with notify_processes(batched, redis, logs):
            results["noop"] = rq_noop_throughput(redis)
            results["batched"] = reminder_run(notify_db, standin, prefix=200)
            results["round_trip"] = rq_round_trip(redis)
            provider_id, type_id = seed_booking(booking_db)
            booking_env = {
                "SUITE_ENV": "development",
                "BOOKING_DATABASE_URL": postgres.url("booking"),
                "REDIS_URL": redis_server.url,
                "API_KEYS": STAFF_KEY,
                "LOG_LEVEL": "WARNING",
            }
            relay = subprocess.Popen(
                [FLASK, "--app", "services.booking", "relay"],
                cwd=ROOT,
                env={**os.environ, **booking_env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                with gunicorn("services.booking:create_app()", env=booking_env, workers=2) as booking_url:
                    results["latency"] = confirmation_latency(booking_url, standin, provider_id, type_id)
            finally:
                relay.terminate()
                relay.wait(timeout=30)
            results["idle"] = idle_upcoming(notify_db, redis, batched)
        per_message = {**batched, "NOTIFY_SEND_BATCH_SIZE": "1", "NOTIFY_SEND_CONCURRENCY": "1"}
        with notify_processes(per_message, redis, logs):
            results["per_message"] = reminder_run(notify_db, standin, prefix=300)
        results["costs"] = handler_costs(batched)
    notify_db.dispose()
    booking_db.dispose()
    _report(results)


def _report(results: dict[str, Any]) -> None:
    noop, batched, single = results["noop"], results["batched"], results["per_message"]
    print(f"\n{REMINDERS:,} SMS reminders due at the same instant T0; {WORKERS} notify worker processes")
    table(
        "Reminders: seconds from T0 (the dispatcher passes every 5 s); per s = reminders / (last - first)",
        ["mode", "first at", "all by", "first to last", "per s", "vs RQ no-op jobs/s", "doubles"],
        [
            [
                name,
                run["first"],
                run["total"],
                run["sending"],
                run["rate"],
                f"{run['rate'] / noop:.2f}x",
                run["doubles"],
            ]
            for name, run in (("batched (50/job, 8 calls at once)", batched), ("one job per message", single))
        ],
    )
    table("Baseline: raw RQ, same workers", ["measure", "value"], [["no-op jobs per second", noop]])
    latency = [1000 * x for x in results["latency"]]
    trip = [1000 * x for x in results["round_trip"]]
    table(
        f"Booking commit -> confirmation SMS at the stand-in ({len(latency)} bookings, milliseconds)",
        ["path", "p50", "p95", "max", "mean"],
        [
            [
                "booking answered -> relay -> notify -> SMS",
                _pct(latency, 50),
                _pct(latency, 95),
                max(latency),
                statistics.mean(latency),
            ],
            [
                "baseline: one RQ no-op job, enqueue -> result",
                _pct(trip, 50),
                _pct(trip, 95),
                max(trip),
                statistics.mean(trip),
            ],
        ],
    )
    table(
        "What one booking costs notify (in-process, PostgreSQL, warm caches; median of 40 bookings)",
        ["handler", "statements", "CPU ms", "RQ jobs", "per s of one core", "vs RQ no-op jobs/s"],
        [
            [name, count, ms, job_count, 1000 / ms, f"{1000 / ms / noop:.2f}x"]
            for name, (count, ms, job_count) in results["costs"].items()
        ],
    )
    idle = results["idle"]
    table(
        f"{idle['upcoming']:,} upcoming reminders planned, none due",
        ["measure", "value"],
        [
            ["dispatcher pass, ms (median of 20)", idle["pass_ms"]],
            ["Redis keys", idle["keys"]],
            ["Redis memory growth while planned, KiB", idle["memory_kib"]],
        ],
    )
    verdict(
        f"all {REMINDERS:,} within {TARGET_SECONDS:.0f} s",
        batched["total"] <= TARGET_SECONDS,
        f"{batched['total']:.1f} s batched; {single['total']:.1f} s one job per message",
    )
    p95 = _pct(latency, 95) / 1000
    verdict(f"confirmation p95 under {TARGET_P95:.0f} s", p95 < TARGET_P95, f"{p95:.3f} s")
    verdict("no reminder twice", batched["doubles"] == single["doubles"] == 0, "each number received one")
