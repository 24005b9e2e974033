"""The booking page's slot step: one provider, 14 days, under 32 concurrent clients, on PostgreSQL.

Target: p95 server time under 50 ms. Server time is what the app reports in its Server-Timing header (query,
slot computation and rendering); wrk's own latency adds the wait in gunicorn's queue, which with 2 sync
workers on 2 cores is mostly concurrency / throughput. Both are printed, beside a bare Flask endpoint served
the same way in the same run.
"""

from __future__ import annotations

import os
import statistics
from datetime import time, timedelta

import requests

from services.booking import search, service
from services.booking.catalog import service as catalog
from shared.db import Database
from shared.timeutil import utcnow
from tests.bench.common import bare_flask, gunicorn, servers, table, verdict, wrk

CONNECTIONS = 32
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARM = min(2, SECONDS)
TARGET_P95_MS = 50.0

# Each wrk thread appends the app's Server-Timing value of every response to one file (O_APPEND lines).
_TIMING_LUA = """
local path = "%s"
local out = nil
response = function(status, headers, body)
  if out == nil then out = io.open(path, "a"); out:setvbuf("line") end
  local timing = headers["Server-Timing"] or headers["server-timing"]
  if timing then
    local dur = string.match(timing, "dur=([0-9.]+)")
    if dur then out:write(dur, "\\n") end
  end
end
"""


def _seed(url: str) -> str:
    """A clinic with one provider open 08:00-20:00 every day and every other hour of two weeks booked."""
    db = Database(url)
    with db.transaction() as session:
        clinic = catalog.create_clinic(
            session=session, slug="bench", name="Bench Clinic", time_zone="America/New_York"
        )
        kind = catalog.create_appointment_type(
            session=session,
            clinic_id=clinic.id,
            fields={
                "slug": "consult",
                "name": "Video consultation",
                "duration_minutes": 45,
                "mode": "video",
                "slot_interval_minutes": 15,
                "buffer_after_minutes": 15,
                "reminder_protocol": "video-consultation",
            },
        )
        provider = catalog.create_provider(
            session=session,
            clinic_id=clinic.id,
            name="Dr. Bench",
            email="bench@example.com",
            time_zone="America/New_York",
            appointment_type_ids=[kind.id],
        )
        catalog.set_weekly_availability(
            session=session, provider_id=provider.id, rules=[(d, time(8), time(20)) for d in range(7)]
        )
        ids = (provider.id, kind.id)
    now = utcnow()
    starts = search.find_slots(
        session=db.sessionmaker(),
        provider_id=ids[0],
        appointment_type_id=ids[1],
        start=now,
        end=now + timedelta(days=15),
    )
    booked = 0
    for n, start in enumerate(starts):
        if n % 8:
            continue
        with db.transaction() as session:
            try:
                service.book_appointment(
                    session=session,
                    provider_id=ids[0],
                    appointment_type_id=ids[1],
                    start=start,
                    patient={
                        "name": f"Patient {n}",
                        "email": f"p{n}@example.com",
                        "time_zone": "Europe/London",
                    },
                )
                booked += 1
            except Exception:  # noqa: BLE001 - an overlapping start is simply skipped
                session.rollback()
    db.dispose()
    print(f"seeded one provider, 12 h a day, {booked} bookings over the next two weeks", flush=True)
    return f"/book/bench/consult/{ids[0]}?tz=Europe/London"


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def run() -> None:
    """Measure the slot step beside the bare Flask baseline and print the figures."""
    with servers("booking", "bench_pages") as running:
        url, redis, workdir = running.database_url, running.redis, running.workdir
        path = _seed(url)
        env = {
            "BOOKING_DATABASE_URL": url,
            "REDIS_URL": redis.url,
            "LOG_LEVEL": "WARNING",
            "SUITE_ENV": "development",
        }
        with bare_flask() as base:
            wrk(base + "/", seconds=WARM, connections=CONNECTIONS)
            bare = wrk(base + "/", seconds=SECONDS, connections=CONNECTIONS)
        timings = workdir / "server-timing.txt"
        with gunicorn("services.booking:create_app()", env=env) as base:
            page = requests.get(base + path, timeout=10)
            page.raise_for_status()
            times_on_page = page.text.count('class="time"')
            days_with_times = page.text.count('class="day')
            wrk(base + path, seconds=WARM, connections=CONNECTIONS)  # warm both workers
            single = wrk(base + path, seconds=min(5, SECONDS), connections=1, threads=1)
            loaded = wrk(base + path, seconds=SECONDS, connections=CONNECTIONS, lua=_TIMING_LUA % timings)
        server = [float(line) for line in timings.read_text().split()]
        p50, p95, p99 = _percentiles(server)
        print(
            f"slot step page: {len(page.content):,} bytes, {days_with_times} day buttons, "
            f"{times_on_page} times on the first free day; {len(server):,} server timings collected"
        )
        table(
            f"Slot step (one provider, 14 days) on PostgreSQL, gunicorn 2 sync workers, wrk {SECONDS}s",
            ["what", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
            [
                [
                    "bare Flask (baseline), client latency",
                    CONNECTIONS,
                    bare.rps,
                    bare.p50_ms,
                    bare.p95_ms,
                    bare.p99_ms,
                    bare.errors + bare.non2xx,
                ],
                [
                    "slot step, client latency",
                    1,
                    single.rps,
                    single.p50_ms,
                    single.p95_ms,
                    single.p99_ms,
                    single.errors + single.non2xx,
                ],
                [
                    "slot step, client latency",
                    CONNECTIONS,
                    loaded.rps,
                    loaded.p50_ms,
                    loaded.p95_ms,
                    loaded.p99_ms,
                    loaded.errors + loaded.non2xx,
                ],
                ["slot step, server time (Server-Timing)", CONNECTIONS, loaded.rps, p50, p95, p99, ""],
            ],
        )
        print(f"  slot step throughput is {loaded.rps / bare.rps:.1%} of the bare Flask endpoint's")
        verdict(
            "p95 server time of the slot step at 32 clients",
            p95 < TARGET_P95_MS,
            f"{p95:.1f} ms (target < {TARGET_P95_MS:.0f} ms)",
        )
