"""The whole suite under load on this machine, then the same with a notify worker killed and restarted.

Everything runs here at once, as in production but on 2 cores: a private PostgreSQL (a database per service) and
Redis, every process of deploy/Procfile started by the image's entry point (``python -m deploy.suitectl run NAME``):
the three web services under gunicorn, the relay, three notify workers, notify's dispatcher, consult's worker and
sweeper. Email goes over real SMTP to a server that counts every message by Message-ID (a double send would
show there); SMS go to notify's console sender. A Python load generator (two processes of eight client threads on loopback) runs a mixed load of slot
searches, bookings, reschedules and cancels on the booking API for ``BENCH_SECONDS`` (60). Then the queues drain
and the benchmark checks, through each service's own tables, that every change reached notify and consult once.

The second run is the same, except that one notify worker is killed with SIGKILL a third of the way in and
started again at half time. Figures are printed beside a bare Flask endpoint loaded by the same generator in
the same run (the ceiling of generator and machine); nothing is asserted.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Worker
from sqlalchemy import create_engine, text

from services.booking import search
from services.booking.catalog import service as catalog
from services.notify.config import NotifyConfig
from services.notify.dispatch import SEND_JOB_PREFIX
from services.notify.models import INVITE, INVITE_LINK
from services.notify.rendering import message_id_for, message_key
from shared.config import load
from shared.db import Database
from shared.migrate import upgrade
from tests.bench import suite_load
from tests.bench.common import ROOT, table, verdict
from tests.bench.suite_load import BOOK, CANCEL, RESCHEDULE, SEARCH, Outcome, Plan
from tests.support.servers import PostgresServer, RedisServer, free_port, wait_until

SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
LOAD_PROCESSES = 2
CLIENTS_PER_PROCESS = 8
PROVIDERS = 48
STAFF_KEY = "bench-staff-key"
# How many of each process run; every other process of the Procfile runs once.
SCALE = {"notify-worker": 3}
WEB_CONCURRENCY = {"booking": "3", "notify": "1", "consult": "1"}
# How long the queues may take to empty after the load when no worker was killed (they take 60-90 s after the
# full 60 s load). After a kill, see _drain_timeout.
DRAIN_TIMEOUT = 300
# After a kill, once what the kill left behind has been cleared: the time for the jobs that clears and the rest.
AFTER_RECOVERY = 120
# BENCH_KILL_IN=send times the kill into a send job of the victim (the slowest recovery: see _drain_timeout),
# instead of a third of the way into the load, wherever that falls.
KILL_IN_SEND = os.environ.get("BENCH_KILL_IN", "") == "send"


@dataclass
class Running:
    """One started process."""

    name: str
    index: int
    process: subprocess.Popen[bytes]
    port: int

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


class CountingSmtp:
    """A real SMTP server (aiosmtpd) that counts each email it receives by Message-ID."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.content)
        key = str(headers.get("Message-ID", ""))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        return "250 OK"

    def received(self) -> dict[str, int]:
        """Message-ID -> how many times it arrived."""
        with self._lock:
            return dict(self._counts)


@dataclass
class Suite:
    """The running suite of one benchmark run."""

    env: dict[str, str]
    urls: dict[str, str]
    database_urls: dict[str, str]
    smtp: CountingSmtp
    processes: list[Running] = field(default_factory=list)
    servers: dict[int, str] = field(default_factory=dict)  # process id -> name: PostgreSQL, Redis

    def start(self, name: str, index: int = 0) -> Running:
        web = name in WEB_CONCURRENCY
        port = free_port()
        env = {**self.env, "PORT" if web else "METRICS_PORT": str(port)}
        if web:
            env["WEB_CONCURRENCY"] = WEB_CONCURRENCY[name]
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.suitectl", "run", name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        running = Running(name, index, process, port)
        self.processes.append(running)
        if web:
            self.urls[name] = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: requests.get(running.metrics_url, timeout=2).status_code == 200, timeout=60, what=name
        )
        return running

    def stop(self) -> None:
        for running in self.processes:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
        for running in self.processes:
            try:
                running.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                running.process.kill()


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(requests.get(url, timeout=10).text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _sum(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in values.items() if n == name and labels.items() <= dict(ls).items())


def _seed(booking_url: str) -> tuple[list[int], list[int], dict[int, list[str]], tuple[str, str]]:
    """A clinic with PROVIDERS providers open 7-21 every day, a video and an in-person type of 30 minutes."""
    db = Database(booking_url)
    with db.transaction() as session:
        clinic = catalog.create_clinic(
            session=session, slug="bench", name="Bench Clinic", time_zone="America/New_York"
        )
        types = [
            catalog.create_appointment_type(
                session=session,
                clinic_id=clinic.id,
                fields={
                    "slug": slug,
                    "name": name,
                    "duration_minutes": 30,
                    "slot_interval_minutes": 30,
                    "mode": mode,
                    "reminder_protocol": protocol,
                    "horizon_days": 60,
                    "location": "" if mode == "video" else "200 Bench Avenue",
                },
            )
            for slug, name, mode, protocol in (
                ("video-consultation", "Video consultation", "video", "video-consultation"),
                ("follow-up", "Follow-up visit", "in_person", "follow-up"),
            )
        ]
        providers = []
        for n in range(PROVIDERS):
            provider = catalog.create_provider(
                session=session,
                clinic_id=clinic.id,
                name=f"Dr. Bench {n}",
                email=f"dr{n}@bench.example",
                time_zone="America/New_York",
                appointment_type_ids=[t.id for t in types],
            )
            catalog.set_weekly_availability(
                session=session,
                provider_id=provider.id,
                rules=[(d, clock_time(7), clock_time(21)) for d in range(7)],
            )
            providers.append(provider.id)
    now = datetime.now(UTC)
    free: dict[int, list[str]] = {}
    with db.transaction() as session:
        for provider_id in providers:
            starts = search.find_slots(
                session=session,
                provider_id=provider_id,
                appointment_type_id=types[0].id,
                start=now + timedelta(days=1),
                end=now + timedelta(days=45),
            )
            listed = [s.isoformat() for s in starts]
            random.Random(provider_id).shuffle(listed)
            free[provider_id] = listed
    db.dispose()
    return providers, [t.id for t in types], free, suite_load.week_window(now)


@contextlib.contextmanager
def _suite(
    workdir: Path, *, env_extra: dict[str, str] | None = None, scale: dict[str, int] | None = None
) -> Iterator[Suite]:
    """The whole suite on private servers; ``env_extra`` overrides settings, ``scale`` process counts."""
    postgres = PostgresServer()
    redis = RedisServer(workdir)
    smtp = CountingSmtp()
    postgres.start()
    redis.start()
    smtp.controller.start()
    suite: Suite | None = None
    try:
        database_urls = {}
        for service in ("booking", "notify", "consult", "checkins"):
            postgres.execute(f"CREATE DATABASE {service}")
            database_urls[service] = postgres.url(service)
            upgrade(service=service, url=database_urls[service])
        env = {
            **os.environ,
            "SUITE_ENV": "development",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "REDIS_URL": redis.url,
            "API_KEYS": STAFF_KEY,
            "BOOKING_DATABASE_URL": database_urls["booking"],
            "NOTIFY_DATABASE_URL": database_urls["notify"],
            "CONSULT_DATABASE_URL": database_urls["consult"],
            "CHECKINS_DATABASE_URL": database_urls["checkins"],
            "HOST": "127.0.0.1",
            "METRICS_HOST": "127.0.0.1",
            "TMPDIR": str(workdir),
            # SMS to notify's console sender (its outbox), email over real SMTP to the counting server.
            "NOTIFY_SMS_BACKEND": "console",
            "NOTIFY_EMAIL_BACKEND": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "SMTP_SECURITY": "none",
            "SMTP_FROM": "Bench Clinic <appointments@bench.example>",
            **(env_extra or {}),
        }
        suite = Suite(env=env, urls={}, database_urls=database_urls, smtp=smtp)
        assert redis.process is not None
        suite.servers = {postgres.pid(): "postgresql", redis.process.pid: "redis"}
        from deploy.suitectl.processes import NOT_IN_PROCFILE, PROCESSES

        for name in PROCESSES:
            if name in NOT_IN_PROCFILE:
                continue
            for index in range((scale or SCALE).get(name, 1)):
                suite.start(name, index)
        yield suite
    finally:
        if suite is not None:
            suite.stop()
        smtp.controller.stop()
        redis.stop()
        postgres.stop()


def _plans(
    booking_url: str, seed: tuple[list[int], list[int], dict[int, list[str]], tuple[str, str]]
) -> list[Plan]:
    providers, types, free, window = seed
    clients = LOAD_PROCESSES * CLIENTS_PER_PROCESS
    return [
        Plan(
            base_url=booking_url,
            api_key=STAFF_KEY,
            providers=providers[i::clients],
            types=types,
            free={p: free[p] for p in providers[i::clients]},
            window=window,
        )
        for i in range(clients)
    ]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus' histogram_quantile over cumulative ``buckets`` (upper bound -> count)."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] == 0:
        return 0.0
    rank = q * ordered[-1][1]
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / max(
                count - previous_count, 1e-9
            )
        previous_bound, previous_count = bound, count
    return previous_bound


def _lag_quantiles(suite: Suite, queue: str) -> tuple[float, float, int]:
    """p50 and p95 of event lag on ``queue`` over its workers now running, and how many events they measured."""
    buckets: dict[float, float] = {}
    for running in suite.processes:
        if running.process.poll() is not None or running.name not in ("notify-worker", "consult-worker"):
            continue
        for (name, labels), value in _scrape(running.metrics_url).items():
            labelled = dict(labels)
            if name == "suite_event_lag_seconds_bucket" and labelled.get("queue") == queue:
                bound = float(labelled["le"])
                buckets[bound] = buckets.get(bound, 0.0) + value
    count = int(max(buckets.values(), default=0))
    return _histogram_quantile(buckets, 0.5), _histogram_quantile(buckets, 0.95), count


def _db_lags(suite: Suite) -> dict[str, list[float]]:
    """Seconds from each booking event's commit to its handling by notify and by consult, and to the email."""
    committed = dict(_rows(suite.database_urls["booking"], "SELECT event_id::text, created_at FROM outbox"))
    lags: dict[str, list[float]] = {}
    for service in ("notify", "consult"):
        lags[f"booking change -> {service} handled it"] = [
            (handled - committed[event_id]).total_seconds()
            for event_id, handled in _rows(
                suite.database_urls[service], "SELECT event_id::text, processed_at FROM processed_events"
            )
            if event_id in committed
        ]
    first_event = {}
    for _event_id, booking_id, created in _rows(
        suite.database_urls["booking"],
        "SELECT event_id::text, booking_id::text, created_at FROM outbox WHERE event_type = 'booking.confirmed'",
    ):
        first_event[booking_id] = created
    lags["booking -> confirmation email accepted by SMTP"] = [
        (sent - first_event[booking_id]).total_seconds()
        for booking_id, sent in _rows(
            suite.database_urls["notify"],
            "SELECT booking_id::text, sent_at FROM messages "
            "WHERE step = 'confirmation' AND channel = 'email' AND status = 'sent'",
        )
        if booking_id in first_event
    ]
    return lags


def _undone(suite: Suite) -> dict[str, float]:
    """What is left to do, by the databases: events waiting in the outbox, deliveries of an event not yet
    acknowledged by their consumer (booking's and consult's ledgers), and messages of notify's plan due and unsent
    or in a provider call. Queue lengths are not asked: a job RQ still holds for a killed worker may be a
    duplicate of work already done."""
    left = {
        "outbox": _rows(
            suite.database_urls["booking"], "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )[0][0]
    }
    for service in ("booking", "consult"):
        left[f"{service} deliveries"] = _rows(
            suite.database_urls[service], "SELECT count(*) FROM event_deliveries WHERE outcome IS NULL"
        )[0][0]
    values = _scrape(suite.urls["notify"] + "/metrics")
    left["due messages"] = _sum(values, "suite_notify_due_messages")
    left["sending messages"] = _sum(values, "suite_notify_sending_messages")
    return {k: float(v) for k, v in left.items() if v}


def _drained(suite: Suite) -> bool:
    """Nothing left to do (see _undone)."""
    return not _undone(suite)


def _drain_timeout(suite: Suite, *, killed: bool) -> float:
    """How long the suite may take to finish its work after the load.

    After a kill, whichever job it cut short (chance decides): an event job is published again once its
    delivery stays unacknowledged past EVENT_REDELIVER_SECONDS; messages a send job left `sending` wait
    NOTIFY_SENDING_STALE_SECONDS, then the dispatcher's next round hands them to reconciliation.
    """
    if not killed:
        return DRAIN_TIMEOUT
    notify = load(NotifyConfig, suite.env)
    redelivered = notify.event_redeliver_seconds * 2
    settled = notify.sending_stale_seconds + notify.dispatch_interval_seconds
    return max(redelivered, settled) + AFTER_RECOVERY


def _repairs(suite: Suite) -> dict[str, int]:
    """What notify's dispatcher repaired (its own counter): messages planned again because their job was lost
    (``requeued``), and messages left `sending` that it handed to reconciliation (``reconciling``)."""
    values = [
        _scrape(running.metrics_url)
        for running in suite.processes
        if running.name == "notify-dispatcher" and running.process.poll() is None
    ]
    return {
        action: int(sum(_sum(v, "suite_notify_dispatched_messages_total", action=action) for v in values))
        for action in ("requeued", "reconciling")
    }


def _wait_drained(suite: Suite, *, timeout: float) -> float:
    """Seconds until the suite is drained on two looks a second apart.

    One look is not enough: RQ takes a job off its queue a moment before it puts it in the started registry,
    so the last job can be in neither when the metrics are read.
    """
    started = time.monotonic()
    while True:
        try:
            wait_until(
                lambda: _drained(suite), timeout=timeout, what="the suite to finish its work", interval=0.5
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; left: {_undone(suite)}") from exc
        drained_at = time.monotonic()
        time.sleep(1.0)
        if _drained(suite):
            return drained_at - started


def _rows(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


@dataclass
class Check:
    name: str
    expected: int
    found: int
    doubled: int

    @property
    def ok(self) -> bool:
        return self.expected == self.found and self.doubled == 0


def _checks(suite: Suite, outcomes: list[Outcome]) -> list[Check]:
    """What notify and consult did, from their own tables, against what the clients were answered."""
    bookings: dict[str, tuple[str, int, int, int, str]] = {}
    for outcome in outcomes:
        bookings.update(outcome.bookings)
    events = _rows(
        suite.database_urls["booking"],
        "SELECT event_id::text, booking_id::text, event_type FROM outbox",
    )
    video_type = _rows(
        suite.database_urls["booking"], "SELECT id FROM appointment_types WHERE mode = 'video'"
    )[0][0]
    checks = []
    # Consult: every booking event handled exactly once (its inbox), and each video booking at its last version.
    consult_seen = _rows(suite.database_urls["consult"], "SELECT event_id::text FROM processed_events")
    expected_ids = {e[0] for e in events}
    checks.append(
        Check(
            "consult handled each booking event",
            len(expected_ids),
            len(expected_ids & {r[0] for r in consult_seen}),
            len(consult_seen) - len({r[0] for r in consult_seen}),
        )
    )
    consultations = dict(
        _rows(suite.database_urls["consult"], "SELECT booking_id::text, version FROM consultations")
    )
    video = {b: v for b, v in bookings.items() if v[2] == video_type}
    checks.append(
        Check(
            "consult holds each video booking at its last version",
            len(video),
            sum(1 for b, v in video.items() if consultations.get(b) == v[1]),
            0,
        )
    )
    for producer in ("booking", "consult"):
        settled = _rows(
            suite.database_urls[producer],
            "SELECT count(*), count(*) FILTER (WHERE outcome IS NOT NULL) FROM event_deliveries",
        )[0]
        checks.append(
            Check(f"every {producer} event acknowledged by each consumer", settled[0], settled[1], 0)
        )
    checks.extend(notify_checks(suite, bookings, events))
    return checks


def notify_checks(
    suite: Suite, bookings: dict[str, tuple[str, int, int, int, str]], events: list[tuple[Any, ...]]
) -> list[Check]:
    """Notify's part, from its own tables and from what the SMTP server received."""
    url = suite.database_urls["notify"]
    seen = _rows(url, "SELECT event_id::text FROM processed_events")
    expected = {e[0] for e in events}
    checks = [
        Check(
            "notify handled each booking event",
            len(expected),
            len(expected & {r[0] for r in seen}),
            len(seen) - len({r[0] for r in seen}),
        )
    ]
    # Each booking's notice of its final state: the confirmation (v1), the reschedule (vN) or the cancellation.
    emails = {
        (booking_id, step, version): status
        for booking_id, step, version, status in _rows(
            url,
            "SELECT booking_id::text, step, booking_version, status FROM messages WHERE channel = 'email'",
        )
    }

    def final_notice(state: tuple[str, int, int, int, str]) -> tuple[str, int]:
        status, version = state[0], state[1]
        if status == "cancelled":
            return "cancelled", version
        return ("confirmation" if version == 1 else "rescheduled"), version

    got = 0
    for booking_id, state in bookings.items():
        step, version = final_notice(state)
        got += emails.get((booking_id, step, version)) == "sent"
    checks.append(
        Check(
            "each booking's latest notice emailed (confirmation, reschedule or cancellation)",
            len(bookings),
            got,
            0,
        )
    )
    sent_emails = sum(1 for status in emails.values() if status == "sent")
    received = suite.smtp.received()
    # A send a killed worker left unrecorded goes again with the same Message-ID (SMTP cannot be asked whether
    # the first one arrived): the one repeat notify owns to (docs/notify.md). Any other repeat is a double.
    resent = {
        message_id_for(message_key(message_id), suite.env["SMTP_FROM"])
        for (message_id,) in _rows(url, "SELECT id FROM messages WHERE channel = 'email' AND attempts > 1")
    }
    owned = sum(count - 1 for mid, count in received.items() if count > 1 and mid in resent)
    checks.append(
        Check(
            "emails the SMTP server received = emails notify recorded as sent"
            + (f" ({owned} sent again after an interrupted send, same Message-ID)" if owned else ""),
            sent_emails,
            len(received),
            sum(count - 1 for count in received.values() if count > 1) - owned,
        )
    )
    stuck = _rows(
        url,
        "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending') "
        "OR (status = 'planned' AND due_at <= now() AND blocked_on IS NULL)",
    )[0][0]
    checks.append(Check("messages stuck in queued or sending, or due and unsent", 0, int(stuck), 0))
    video_type = _rows(
        suite.database_urls["booking"], "SELECT id FROM appointment_types WHERE mode = 'video'"
    )[0][0]
    links = {(b, v) for b, v in _rows(url, "SELECT booking_id::text, booking_version FROM join_links")}
    confirmed_video = [(b, s[1]) for b, s in bookings.items() if s[2] == video_type and s[0] == "confirmed"]
    checks.append(
        Check(
            "notify holds the join links of each confirmed video booking's version",
            len(confirmed_video),
            sum(1 for key in confirmed_video if key in links),
            0,
        )
    )
    checks.append(invite_check(url, bookings))
    return checks


def invite_check(url: str, bookings: dict[str, tuple[str, int, int, int, str]]) -> Check:
    """Each provider's calendar ends as the booking ended: the highest-SEQUENCE invite that went is of the
    booking's final version (a CANCEL for a cancelled one, unless no invite ever went); no SEQUENCE went twice."""
    sent: dict[str, list[tuple[int, int, str]]] = {}
    for booking_id, step, version, sequence in _rows(
        url,
        "SELECT booking_id::text, step, booking_version, sequence FROM messages "
        "WHERE step IN (:invite, :link) AND status = 'sent'",
        invite=INVITE,
        link=INVITE_LINK,
    ):
        sent.setdefault(booking_id, []).append((sequence, version, step))
    right = 0
    for booking_id, (status, version, *_rest) in bookings.items():
        went = sorted(sent.get(booking_id, []))
        if not went:
            right += status == "cancelled"  # booked and cancelled before any invite went: nothing to remove
            continue
        _sequence, last_version, last_step = went[-1]
        right += last_version == version and (status != "cancelled" or last_step == INVITE)
    doubled = sum(len(w) - len({seq for seq, _v, _s in w}) for w in sent.values())
    return Check(
        "each provider's calendar ends at the booking's final state (last invite sent)",
        len(bookings),
        right,
        doubled,
    )


def _baseline(seconds: int) -> float:
    """Requests a second the same generator gets from a bare Flask endpoint under gunicorn (3 workers)."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            str(ROOT / "deploy/gunicorn.conf.py"),
            "tests.bench.bare:app",
        ],
        cwd=ROOT,
        env={**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: requests.get(base + "/", timeout=1).status_code == 200, timeout=30, what="bare flask"
        )
        done = [0]
        deadline = time.monotonic() + seconds

        def loop() -> None:
            session = requests.Session()
            while time.monotonic() < deadline:
                session.get(base + "/", timeout=10)
                done[0] += 1

        threads = [threading.Thread(target=loop) for _ in range(LOAD_PROCESSES * CLIENTS_PER_PROCESS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return done[0] / seconds
    finally:
        process.terminate()
        process.wait(timeout=30)


def _await_send_job(suite: Suite, pid: int, *, timeout: float = 120.0) -> None:
    """Return once the notify worker with ``pid`` is running a send job (or after ``timeout``)."""
    redis = Redis.from_url(suite.env["REDIS_URL"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for worker in Worker.all(connection=redis):
                if worker.pid == pid and (worker.get_current_job_id() or "").startswith(SEND_JOB_PREFIX):
                    return
            time.sleep(0.002)
    finally:
        redis.close()


def _run(label: str, *, kill_a_worker: bool) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    with _suite(workdir) as suite:
        plans = _plans(suite.urls["booking"], _seed(suite.database_urls["booking"]))
        killer: threading.Thread | None = None
        killed: dict[str, float] = {}
        if kill_a_worker:
            victim = next(r for r in suite.processes if r.name == "notify-worker")

            def kill_and_restart() -> None:
                time.sleep(SECONDS / 3)
                if KILL_IN_SEND:
                    _await_send_job(suite, victim.process.pid)
                victim.process.send_signal(signal.SIGKILL)
                victim.process.wait(timeout=10)
                killed["at"] = time.monotonic() - started
                time.sleep(max(0.0, SECONDS / 2 - killed["at"]))
                suite.start("notify-worker", victim.index + 10)
                killed["restarted"] = time.monotonic() - started

            killer = threading.Thread(target=kill_and_restart)
        started = time.monotonic()
        if killer is not None:
            killer.start()
        outcomes = suite_load.run_load(plans, seconds=SECONDS, processes=LOAD_PROCESSES)
        elapsed = time.monotonic() - started
        if killer is not None:
            killer.join()
        lag_during = {q: _lag_quantiles(suite, q) for q in ("notify", "consult")}
        drain = _wait_drained(suite, timeout=_drain_timeout(suite, killed=kill_a_worker))
        repairs = _repairs(suite)
        checks = _checks(suite, outcomes)
        db_lags = _db_lags(suite)
    return {
        "label": label,
        "outcomes": outcomes,
        "elapsed": elapsed,
        "drain": drain,
        "lag": lag_during,
        "db_lags": db_lags,
        "checks": checks,
        "killed": killed,
        "repairs": repairs,
    }


def _report(result: dict[str, Any], baseline_rps: float) -> None:
    outcomes: list[Outcome] = result["outcomes"]
    rows = []
    total = 0
    for op in (SEARCH, BOOK, RESCHEDULE, CANCEL):
        samples = [s for o in outcomes for s in o.samples.get(op, [])]
        statuses: dict[int, int] = {}
        for o in outcomes:
            for status, count in o.statuses.get(op, {}).items():
                statuses[status] = statuses.get(status, 0) + count
        ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
        total += len(samples)
        rows.append(
            [
                op,
                len(samples),
                len(samples) / result["elapsed"],
                _percentile(samples, 0.5) * 1000,
                _percentile(samples, 0.95) * 1000,
                _percentile(samples, 0.99) * 1000,
                len(samples) - ok,
            ]
        )
    all_samples = [s for o in outcomes for op in o.samples.values() for s in op]
    rows.append(
        [
            "all",
            total,
            total / result["elapsed"],
            _percentile(all_samples, 0.5) * 1000,
            _percentile(all_samples, 0.95) * 1000,
            _percentile(all_samples, 0.99) * 1000,
            sum(r[6] for r in rows),
        ]
    )
    print(f"\n--- {result['label']} ---")
    if result["killed"]:
        print(
            f"  one notify worker SIGKILLed at {result['killed']['at']:.0f} s, "
            f"a new one started at {result['killed']['restarted']:.0f} s"
        )
    table(
        f"Load: {LOAD_PROCESSES * CLIENTS_PER_PROCESS} clients for {result['elapsed']:.0f} s "
        f"(bare Flask with the same generator: {baseline_rps:,.0f} req/s)",
        ["operation", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "non-2xx"],
        rows,
    )
    errors = sum(o.errors for o in outcomes)
    bookings = {b: v for o in outcomes for b, v in o.bookings.items()}
    print(
        f"  transport errors: {errors}; bookings made: {len(bookings)} "
        f"({sum(1 for v in bookings.values() if v[0] == 'cancelled')} cancelled, "
        f"{sum(1 for v in bookings.values() if v[1] > 1 and v[0] == 'confirmed')} rescheduled and still confirmed)"
    )
    table(
        "Queue lag, from the databases (commit of the booking change -> the consumer's inbox row; -> SMTP)",
        ["path", "events", "p50 s", "p95 s", "max s"],
        [
            [path, len(values), _percentile(values, 0.5), _percentile(values, 0.95), max(values, default=0.0)]
            for path, values in result["db_lags"].items()
        ],
    )
    table(
        "The same as the workers' own suite_event_lag_seconds histograms report it (workers alive at the end)",
        ["queue", "events", "p50 s", "p95 s"],
        [[q, n, p50, p95] for q, (p50, p95, n) in result["lag"].items()],
    )
    print(
        f"  after the load stopped, every event was acknowledged and every due message settled within {result['drain']:.1f} s"
    )
    if result["killed"]:
        print(
            f"  messages the kill left behind: {result['repairs']['requeued']} queued in the job it cut short"
            f" (planned again once RQ gave the job up), {result['repairs']['reconciling']} left `sending`"
            " (checked with the provider after NOTIFY_SENDING_STALE_SECONDS)"
        )
    table(
        "Delivery, from each service's own tables",
        ["check", "expected", "found", "doubled", "ok"],
        [[c.name, c.expected, c.found, c.doubled, "yes" if c.ok else "NO"] for c in result["checks"]],
    )
    booking_rps = rows[1][2]
    verdict(
        "throughput above the bare-Flask ceiling's tenth",
        rows[-1][2] >= baseline_rps / 10,
        f"{rows[-1][2]:.0f} req/s",
    )
    verdict(
        "booking p95 under 250 ms under the full mixed load",
        rows[1][4] < 250,
        f"{rows[1][4]:.0f} ms ({booking_rps:.0f} bookings/s)",
    )
    verdict(
        "nothing lost or doubled",
        all(c.ok for c in result["checks"]),
        f"{sum(c.ok for c in result['checks'])}/{len(result['checks'])} checks",
    )


def run() -> None:
    """Measure and print."""
    baseline = _baseline(10)
    print(
        f"Whole suite on {os.cpu_count()} cores: PostgreSQL, Redis, booking x{WEB_CONCURRENCY['booking']} "
        f"gunicorn workers, notify and consult x1, relay, notify-worker x{SCALE['notify-worker']}, and every "
        "other Procfile process once; SMS to notify's console sender, email over SMTP to a counting server, "
        "video on the local provider"
    )
    killed = "one notify worker killed" + (" in a send job" if KILL_IN_SEND else "") + " and restarted"
    for label, kill in (("steady", False), (killed, True)):
        _report(_run(label, kill_a_worker=kill), baseline)
