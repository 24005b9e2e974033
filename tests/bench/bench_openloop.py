"""The whole suite under an open-loop load: how late a confirmation SMS is at a quarter, half and three
quarters of the suite's capacity.

An open-loop generator sends each request at its scheduled moment whether or not earlier ones were answered,
as patients do, so a slow suite shows as latency and backlog instead of as a politely slower client. The mix
is the booking page's: per booking 4 slot searches; a tenth of bookings are later rescheduled and a tenth
cancelled. The suite runs as in bench_suite (every Procfile process, private PostgreSQL and Redis), with SMS
going through the Twilio library to the local Twilio stand-in.

1. Capacity: closed-loop clients run the mix as fast as the suite answers for a third of ``BENCH_SECONDS``
   (at most 20 s); capacity is the bookings per second of that mix.
2. At 25%, 50% and 75% of it, ``BENCH_SECONDS`` (60) each, the queues drained in between: booking latency
   from the scheduled moment; booking answered -> confirmation SMS sent (notify's ``messages.sent_at``) for
   bookings scheduled in the first and in the last 15 s; queue lag sampled each second; drain time; missing
   confirmations.
3. Each consumer's handling rate (events per second of one worker's busy time, from the workers' own job
   histograms) beside RQ's no-op jobs per second through the same workers, measured in the same run.

Figures and reasoning: docs/performance.md.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from redis import Redis
from rq import Queue
from rq.registry import FinishedJobRegistry
from sqlalchemy import select

from services.booking.catalog import service as catalog
from services.booking.models import Clinic
from services.notify.runtime import SEND_QUEUE
from shared.db import Database
from shared.queues import CONSULT_QUEUE, NOTIFY_QUEUE, queue
from tests.bench import bench_checkins, bench_courses, bench_suite, cpu_usage
from tests.bench.common import table, verdict
from tests.support.servers import wait_until
from tests.support.twilio_standin import running_standin

SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
CAPACITY_SECONDS = max(2, min(20, SECONDS // 3))
NOTIFY_WORKERS = int(os.environ.get("BENCH_NOTIFY_WORKERS", "3"))
NOOP_JOBS = int(os.environ.get("BENCH_NOOP_JOBS", "1000"))
FRACTIONS = (0.25, 0.5, 0.75)
SEARCHES = 4
WINDOW = min(15.0, SECONDS / 4)  # the first and the last seconds of the schedule compared
CLOSED_CLIENTS = 16
OPEN_THREADS = 96
TARGETS = {0.5: 2.0, 0.75: 10.0}  # confirmation SMS p95 targets, seconds
STAFF_KEY = bench_suite.STAFF_KEY
SEARCH, BOOK, RESCHEDULE, CANCEL = "slot search", "booking", "reschedule", "cancel"
COURSE = "course"  # plan a 6-session course and book it: one unit in COURSE_EVERY
COURSE_EVERY = int(os.environ.get("BENCH_COURSE_EVERY", "20"))  # 0: no courses in the mix
DUE_CHECKINS = int(os.environ.get("BENCH_DUE_CHECKINS", "200"))  # check-ins due at each phase's start


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Slots:
    """Free provider starts handed out to bookings and reschedules, thread-safe."""

    free: dict[int, deque[str]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    turn: int = 0

    def take(self, provider: int | None = None) -> tuple[int, str] | None:
        with self.lock:
            providers = [provider] if provider is not None else list(self.free)
            for _ in range(len(providers)):
                self.turn += 1
                chosen = providers[self.turn % len(providers)]
                if self.free[chosen]:
                    return chosen, self.free[chosen].pop()
            return None


@dataclass
class Mix:
    """What one load phase did: per operation latencies, the bookings and what happened to them."""

    base_url: str
    slots: Slots
    types: list[int]
    window: tuple[str, str]
    latency: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    why: dict[str, int] = field(default_factory=dict)  # "op: reason" -> count (a 5xx is a defect)
    # booking id -> (scheduled offset s, answered at epoch s, provider)
    booked: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    changed: set[str] = field(
        default_factory=set
    )  # rescheduled or cancelled: not in the confirmation figures
    template: int | None = None
    # course id -> (scheduled offset s, answered at epoch s, its sessions' booking ids)
    courses: dict[str, tuple[float, float, list[str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    local: threading.local = field(default_factory=threading.local)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self.local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {STAFF_KEY}"
            self.local.session = session
        return session

    def _record(self, op: str, seconds: float, ok: bool | str) -> None:
        with self.lock:
            self.latency.setdefault(op, []).append(seconds)
            if ok is not True:
                self.errors[op] = self.errors.get(op, 0) + 1
                reason = f"{op}: {ok or 'no free slot or target'}"
                self.why[reason] = self.why.get(reason, 0) + 1

    def do(self, op: str, unit: int, scheduled: float, clock_zero: float) -> None:
        """Send one request of the mix; latency counts from ``scheduled`` (monotonic), not from sending."""
        try:
            ok = getattr(self, "_" + op.replace(" ", "_"))(unit, scheduled - clock_zero)
        except requests.RequestException as exc:
            ok = type(exc).__name__
        self._record(op, time.monotonic() - scheduled, ok)

    def _slot_search(self, unit: int, _offset: float) -> bool | str:
        rng = random.Random(unit)
        answer = self._session().get(
            f"{self.base_url}/api/v1/slots",
            params={
                "provider_id": rng.choice(list(self.slots.free)),
                "appointment_type_id": rng.choice(self.types),
                "start": self.window[0],
                "end": self.window[1],
            },
            timeout=60,
        )
        return answer.status_code == 200 or f"HTTP {answer.status_code}"

    def _booking(self, unit: int, offset: float) -> bool | str:
        taken = self.slots.take()
        if taken is None:
            return False
        provider, start = taken
        answer = self._session().post(
            f"{self.base_url}/api/v1/bookings",
            json={
                "provider_id": provider,
                "appointment_type_id": self.types[unit % len(self.types)],
                "start": start,
                "patient": {
                    "name": f"Open Loop {unit}",
                    "email": f"o{unit}@bench.example",
                    "phone": f"+1415{2_000_000 + unit % 7_000_000:07d}",
                    "time_zone": "America/New_York",
                    "sms_consent": True,
                },
            },
            timeout=60,
        )
        if answer.status_code != 201:
            return f"HTTP {answer.status_code}"
        with self.lock:
            self.booked[answer.json()["id"]] = (offset, time.time(), provider)
        return True

    def _course(self, unit: int, offset: float) -> bool | str:
        if self.template is None:
            return False
        plan = self._session().post(
            f"{self.base_url}/api/v1/courses/plan", json={"template_id": self.template}, timeout=60
        )
        if plan.status_code != 200:
            return f"plan HTTP {plan.status_code}"
        sessions = [{"start": s["start"], "provider_id": s["provider_id"]} for s in plan.json()["sessions"]]
        patient = {
            "name": f"Open Loop Course {unit}",
            "email": f"oc{unit}@bench.example",
            "phone": f"+1415{2_000_000 + unit % 7_000_000:07d}",
            "time_zone": "America/New_York",
            "sms_consent": True,
        }
        answer = self._session().post(
            f"{self.base_url}/api/v1/courses",
            json={"template_id": self.template, "sessions": sessions, "patient": patient},
            timeout=60,
        )
        if answer.status_code != 201:
            return f"HTTP {answer.status_code}"
        body = answer.json()
        with self.lock:
            self.courses[body["id"]] = (offset, time.time(), [s["id"] for s in body["sessions"]])
        return True

    def _target(self, unit: int) -> tuple[str, int] | None:
        with self.lock:
            candidates = sorted(set(self.booked) - self.changed)
            if not candidates:
                return None
            chosen = random.Random(unit).choice(candidates)
            self.changed.add(chosen)
            return chosen, self.booked[chosen][2]

    def _reschedule(self, unit: int, _offset: float) -> bool | str:
        target = self._target(unit)
        taken = self.slots.take(target[1]) if target else None
        if target is None or taken is None:
            return False
        answer = self._session().post(
            f"{self.base_url}/api/v1/bookings/{target[0]}/reschedule", json={"start": taken[1]}, timeout=60
        )
        return answer.status_code == 200 or f"HTTP {answer.status_code}"

    def _cancel(self, unit: int, _offset: float) -> bool | str:
        target = self._target(unit)
        if target is None:
            return False
        answer = self._session().post(
            f"{self.base_url}/api/v1/bookings/{target[0]}/cancel", json={}, timeout=60
        )
        return answer.status_code == 200 or f"HTTP {answer.status_code}"


def _seed_courses(booking_url: str, providers: list[int]) -> int:
    """On the bench clinic: an infusion type for the providers, 4 chairs, a 6-session template (bench_courses')."""
    db = Database(booking_url)
    with db.transaction() as session:
        clinic_id = session.execute(select(Clinic.id).where(Clinic.slug == "bench")).scalar_one()
        infusion = bench_courses.infusion_type(session, clinic_id)
        for provider_id in providers:
            offered = catalog.get_provider(session=session, provider_id=provider_id).appointment_types
            catalog.update_provider(
                session=session,
                provider_id=provider_id,
                changes={"appointment_type_ids": [t.id for t in offered] + [infusion.id]},
            )
        template = bench_courses.chairs_and_course(session, clinic_id, infusion.id)
        template_id = int(template.id)
    db.dispose()
    return template_id


def _unit_ops(unit: int) -> list[str]:
    """One booking's requests in page order: the searches, the booking, and a later change for some."""
    if COURSE_EVERY and unit % COURSE_EVERY == COURSE_EVERY - 1:
        return [COURSE]
    ops = [SEARCH] * SEARCHES + [BOOK]
    if unit % 10 == 3:
        ops.append(RESCHEDULE)
    elif unit % 10 == 7:
        ops.append(CANCEL)
    return ops


def capacity(mix: Mix, seconds: float) -> float:
    """Bookings per second of the mix with CLOSED_CLIENTS clients each sending its next request when answered."""
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))
    lock = threading.Lock()
    started = time.monotonic()

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                unit = next(counter)
            for op in _unit_ops(unit):
                mix.do(op, unit, time.monotonic(), started)

    threads = [threading.Thread(target=client) for _ in range(CLOSED_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(mix.booked) / (time.monotonic() - started)


def open_loop(mix: Mix, rate: float, seconds: float) -> float:
    """Send the mix at ``rate`` bookings/s for ``seconds`` on a fixed schedule; return when all were answered."""
    schedule: list[tuple[float, str, int]] = []
    for unit in range(max(1, round(rate * seconds))):
        ops = _unit_ops(unit)
        for n, op in enumerate(ops):
            # The unit's requests spread over its 1/rate slice; a change goes a few seconds after its booking.
            offset = (unit + n / len(ops)) / rate
            schedule.append((offset + (2.0 if op in (RESCHEDULE, CANCEL) else 0.0), op, unit))
    schedule.sort()
    zero = time.monotonic()
    with ThreadPoolExecutor(max_workers=OPEN_THREADS) as pool:
        for offset, op, unit in schedule:
            delay = zero + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(mix.do, op, unit, zero + offset, zero)
    return time.monotonic() - zero


class LagSampler:
    """Each second: jobs waiting on each notify and consult queue and the age of the oldest one."""

    QUEUES = (NOTIFY_QUEUE, SEND_QUEUE, CONSULT_QUEUE)

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.samples: list[tuple[float, dict[str, tuple[int, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._zero = 0.0

    def __enter__(self) -> LagSampler:
        self._zero = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            now = time.time()
            sample = {}
            for name in self._queues():
                q: Queue = queue(name, self.redis)
                head = q.get_job_ids(0, 1)
                job = q.fetch_job(head[0]) if head else None
                age = now - job.enqueued_at.timestamp() if job is not None and job.enqueued_at else 0.0
                sample[name] = (q.count, max(0.0, age))
            self.samples.append((time.monotonic() - self._zero, sample))

    def _queues(self) -> tuple[str, ...]:
        known = {q.name for q in Queue.all(connection=self.redis)}
        return tuple(q for q in self.QUEUES if q in known or q == NOTIFY_QUEUE) + tuple(
            sorted(q for q in known if q.startswith("notify") and q not in self.QUEUES)
        )

    def summary(self, buckets: int = 6) -> list[list[object]]:
        """Rows: time slice, and per queue the most jobs waiting and the oldest job's age in it."""
        if not self.samples:
            return []
        end = self.samples[-1][0]
        width = max(end / buckets, 1.0)
        names = sorted({n for _, s in self.samples for n in s})
        rows = []
        for b in range(buckets):
            inside = [s for t, s in self.samples if b * width <= t < (b + 1) * width]
            if not inside:
                continue
            row: list[object] = [f"{b * width:.0f}-{(b + 1) * width:.0f} s"]
            for name in names:
                row.append(max(s.get(name, (0, 0.0))[0] for s in inside))
                row.append(max(s.get(name, (0, 0.0))[1] for s in inside))
            rows.append(row)
        return [["time", *[f"{n} {w}" for n in names for w in ("jobs", "oldest s")]], *rows]


def _confirmations(suite: bench_suite.Suite, mix: Mix) -> dict[str, float]:
    """Booking id -> seconds from the booking's answer to its confirmation SMS sent (notify's own record)."""
    sent = bench_suite._rows(
        suite.database_urls["notify"],
        "SELECT booking_id::text, extract(epoch FROM sent_at) FROM messages "
        "WHERE step = 'confirmation' AND channel = 'sms' AND status = 'sent'",
    )
    return {
        booking_id: float(at) - mix.booked[booking_id][1]
        for booking_id, at in sent
        if booking_id in mix.booked and booking_id not in mix.changed
    }


def _course_confirmations(suite: bench_suite.Suite, mix: Mix) -> dict[str, float]:
    """Course id -> seconds from the course's answer to its one SMS sent (the course-confirmation row)."""
    sent = bench_suite._rows(
        suite.database_urls["notify"],
        "SELECT booking_id::text, extract(epoch FROM min(sent_at)) FROM messages "
        "WHERE channel = 'sms' AND status = 'sent' AND step = 'course-confirmation' GROUP BY booking_id",
    )
    first = {booking_id: float(at) for booking_id, at in sent}
    lags = {}
    for course_id, (_offset, answered, sessions) in mix.courses.items():
        times = [first[b] for b in sessions if b in first]
        if times:
            lags[course_id] = min(times) - answered
    return lags


def _checkins_sent(suite: bench_suite.Suite) -> int:
    """Check-in SMS notify has sent so far."""
    rows = bench_suite._rows(
        suite.database_urls["notify"],
        "SELECT count(*) FROM messages WHERE step LIKE 'checkin:%' AND channel = 'sms' AND status = 'sent'",
    )
    return int(rows[0][0])


def _seed_due_checkins(suite: bench_suite.Suite, pool: list[str]) -> int:
    """Check-ins due now on DUE_CHECKINS bookings of ``pool`` (bench_checkins' seeding): the scheduler
    publishes them and notify, which knows those bookings, sends them during the phase."""
    taken = [uuid.UUID(b) for b in pool[:DUE_CHECKINS]]
    del pool[:DUE_CHECKINS]
    if taken:
        db = Database(suite.database_urls["checkins"])
        bench_checkins._seed_due(db, len(taken), taken)
        db.dispose()
    return len(taken)


def _window_rows(mix: Mix, lags: dict[str, float], seconds: float) -> list[list[object]]:
    rows = []
    for label, low, high in (
        (f"first {WINDOW:.0f} s", 0.0, WINDOW),
        (f"last {WINDOW:.0f} s", seconds - WINDOW, seconds),
        ("all", 0.0, seconds),
    ):
        values = [lag for b, lag in lags.items() if low <= mix.booked[b][0] < high]
        rows.append(
            [label, len(values), _pct(values, 0.5), _pct(values, 0.95), max(values, default=float("nan"))]
        )
    return rows


def _noop(connection: Redis, queue_name: str, jobs: int) -> float:
    """No-op jobs per second through the workers on ``queue_name`` (bench_notify's no-op job)."""
    q = queue(queue_name, connection)
    finished = FinishedJobRegistry(queue=q)
    before = finished.count
    started = time.perf_counter()
    pipe = connection.pipeline(transaction=False)
    for _ in range(jobs):
        q.enqueue_call("tests.bench.bench_notify.noop", pipeline=pipe, description="noop", result_ttl=60)
    pipe.execute()
    wait_until(lambda: finished.count - before >= jobs, timeout=300, what="no-op jobs", interval=0.05)
    return jobs / (time.perf_counter() - started)


def _handler_rates(suite: bench_suite.Suite) -> dict[str, tuple[int, float]]:
    """Handler -> (jobs, jobs per second of one worker's busy time), from the workers' job histograms."""
    sums: dict[str, list[float]] = {}
    for running in suite.processes:
        if running.process.poll() is not None or not running.name.endswith("-worker"):
            continue
        values = bench_suite._scrape(running.metrics_url)
        for (name, labels), value in values.items():
            labelled = dict(labels)
            if name in ("suite_job_duration_seconds_sum", "suite_job_duration_seconds_count"):
                key = f"{running.name.removesuffix('-worker')}: {labelled['handler'].rsplit('.', 1)[-1]}"
                pair = sums.setdefault(key, [0.0, 0.0])
                pair[0 if name.endswith("_sum") else 1] += value
    return {
        key: (int(count), count / total if total else 0.0)
        for key, (total, count) in sorted(sums.items())
        if "noop" not in key
    }


@dataclass
class Phase:
    """The figures of one open-loop rate."""

    fraction: float
    rate: float
    mix: Mix
    elapsed: float
    drain: float
    lags: dict[str, float]
    lag_rows: list[list[object]]
    course_lags: dict[str, float] = field(default_factory=dict)
    checkins: int = 0
    due: int = 0
    cpu: list[list[object]] = field(default_factory=list)

    def windows(self) -> list[list[object]]:
        return _window_rows(self.mix, self.lags, SECONDS)

    def course_windows(self) -> list[list[object]]:
        courses = {c: (v[0], v[1], 0) for c, v in self.mix.courses.items()}
        return _window_rows(Mix("", self.mix.slots, [], ("", ""), booked=courses), self.course_lags, SECONDS)

    def course_missing(self) -> int:
        return len(set(self.mix.courses) - set(self.course_lags))

    def missing(self) -> int:
        return len(set(self.mix.booked) - self.mix.changed - set(self.lags))


def _phase(
    suite: bench_suite.Suite,
    redis: Redis,
    make_mix: Callable[[], Mix],
    fraction: float,
    cap: float,
    pool: list[str],
) -> Phase:
    mix = make_mix()
    rate = fraction * cap
    due = _seed_due_checkins(suite, pool)
    checkins_before = _checkins_sent(suite)
    roots = {**suite.servers, **{running.process.pid: running.name for running in suite.processes}}
    with LagSampler(redis) as sampler:
        before = cpu_usage.snapshot(roots)
        elapsed = open_loop(mix, rate, SECONDS)
        cpu = cpu_usage.rows(before, cpu_usage.snapshot(roots))
        drain_started = time.monotonic()
        bench_suite._wait_drained(suite, timeout=bench_suite.DRAIN_TIMEOUT)
        drain = time.monotonic() - drain_started
    return Phase(
        fraction,
        rate,
        mix,
        elapsed,
        drain,
        _confirmations(suite, mix),
        sampler.summary(),
        _course_confirmations(suite, mix),
        _checkins_sent(suite) - checkins_before,
        due,
        cpu,
    )


def _report_phase(phase: Phase) -> None:
    mix = phase.mix
    booked = len(mix.booked)
    requests_done = sum(len(v) for v in mix.latency.values())
    print(
        f"\n--- {phase.fraction:.0%} of capacity: {phase.rate:.2f} bookings/s offered "
        f"({phase.rate * (SEARCHES + 1.2):.1f} req/s of the mix) for {SECONDS} s ---"
    )
    table(
        "Requests, latency from the scheduled moment",
        ["operation", "sent", "errors", "p50 ms", "p95 ms", "max ms"],
        [
            [op, len(v), mix.errors.get(op, 0), _pct(v, 0.5) * 1000, _pct(v, 0.95) * 1000, max(v) * 1000]
            for op, v in sorted(mix.latency.items())
        ],
    )
    print(
        f"  achieved: {booked / phase.elapsed:.2f} bookings/s, {requests_done / phase.elapsed:.1f} req/s "
        f"(= {booked / phase.elapsed / phase.rate:.2f} of offered); last answer {phase.elapsed:.1f} s after start"
    )
    if mix.why:
        print("  errors: " + "; ".join(f"{reason} x{count}" for reason, count in sorted(mix.why.items())))
    table(
        "Booking answered -> confirmation SMS sent, by when the booking was scheduled (seconds)",
        ["bookings", "SMS", "p50 s", "p95 s", "max s"],
        phase.windows(),
    )
    table(
        "Course booked -> its confirmation SMS sent, by when the course was scheduled (seconds)",
        ["courses", "SMS", "p50 s", "p95 s", "max s"],
        phase.course_windows(),
    )
    print(
        f"  missing course confirmations: {phase.course_missing()}; check-in SMS sent by notify during the "
        f"phase: {phase.checkins} ({phase.due} due at its start)"
    )
    if phase.lag_rows:
        table(
            "Queue lag during load and drain (most jobs waiting, oldest job's age)",
            phase.lag_rows[0],
            phase.lag_rows[1:],
        )
    print(f"  drain after the last answer: {phase.drain:.1f} s; missing confirmations: {phase.missing()}")
    table("CPU during the load, cores used (from /proc)", ["processes", "cores"], phase.cpu)


def _knee(phases: list[Phase]) -> str:
    """The lowest rate at which the confirmation lag grows over the run or p95 passes 10 s."""
    for phase in phases:
        first, last, _all = phase.windows()
        growing = last[3] > 2 * first[3] + 1.0
        if growing or _all[3] > 10.0 or phase.missing():
            return f"at or below {phase.fraction:.0%} of capacity ({phase.rate:.2f} bookings/s)"
    return f"above {phases[-1].fraction:.0%} of capacity (not reached)"


def _env(standin_url: str) -> dict[str, str]:
    return {
        "NOTIFY_SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "bench-auth-token",
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
        "TWILIO_API_BASE_URL": standin_url,
        "NOTIFY_QUIET_HOURS": "",
    }


def run() -> None:
    """Measure and print."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-openloop-"))
    scale = {**bench_suite.SCALE, "notify-worker": NOTIFY_WORKERS}
    with (
        running_standin() as standin,
        bench_suite._suite(workdir, env_extra=_env(standin.url), scale=scale) as suite,
    ):
        suite.servers[standin.pid] = "twilio stand-in"
        providers, types, free, window = bench_suite._seed(suite.database_urls["booking"])
        slots = Slots({p: deque(free[p]) for p in providers})
        template = _seed_courses(suite.database_urls["booking"], providers)
        redis = Redis.from_url(suite.env["REDIS_URL"])

        def make_mix() -> Mix:
            return Mix(suite.urls["booking"], slots, types, window, template=template)

        # Per worker process, like the handler rates (notify's queue has NOTIFY_WORKERS of them).
        workers = {NOTIFY_QUEUE: NOTIFY_WORKERS, CONSULT_QUEUE: 1}
        noop = {name: _noop(redis, name, NOOP_JOBS) / workers[name] for name in workers}
        closed = make_mix()
        cap = capacity(closed, CAPACITY_SECONDS)
        bench_suite._wait_drained(suite, timeout=bench_suite.DRAIN_TIMEOUT)
        print(
            f"Whole suite (booking x{bench_suite.WEB_CONCURRENCY['booking']} gunicorn workers, notify-worker "
            f"x{NOTIFY_WORKERS}, every other Procfile process once), SMS to the Twilio stand-in."
        )
        print(
            f"Capacity, {CLOSED_CLIENTS} closed-loop clients for {CAPACITY_SECONDS} s: {cap:.2f} bookings/s of the mix "
            f"({sum(len(v) for v in closed.latency.values()) / CAPACITY_SECONDS:.1f} req/s)"
        )
        # Check-ins go on the capacity run's bookings (confirmed, so notify knows them).
        pool = sorted(set(closed.booked) - closed.changed)
        phases = []
        for fraction in FRACTIONS:
            phases.append(_phase(suite, redis, make_mix, fraction, cap, pool))
            pool += sorted(set(phases[-1].mix.booked) - phases[-1].mix.changed)
        for phase in phases:
            _report_phase(phase)
        rates = _handler_rates(suite)
        redis.close()
    table(
        "Consumers: events handled per second of one worker's busy time, beside RQ no-op jobs/s (same workers, same run)",
        ["handler", "jobs", "per s", "vs no-op"],
        [
            [
                name,
                jobs,
                rate,
                f"{rate / noop[CONSULT_QUEUE if name.startswith('consult') else NOTIFY_QUEUE]:.2f}x",
            ]
            for name, (jobs, rate) in rates.items()
        ]
        + [[f"RQ no-op jobs, one {q} worker", NOOP_JOBS, noop[q], "1.00x"] for q in noop],
    )
    print(f"  knee: {_knee(phases)}")
    for phase in phases:
        target = TARGETS.get(phase.fraction)
        if target is None:
            continue
        first, last, every = phase.windows()
        verdict(
            f"confirmation SMS p95 under {target:.0f} s at {phase.fraction:.0%}, last {WINDOW:.0f} s no worse than first",
            every[3] < target and last[3] <= max(first[3] * 1.5, first[3] + 0.5),
            f"p95 {every[3]:.2f} s; first {first[3]:.2f} s, last {last[3]:.2f} s",
        )
    verdict(
        "no confirmation missing",
        not any(p.missing() for p in phases),
        f"{sum(p.missing() for p in phases)} missing",
    )
