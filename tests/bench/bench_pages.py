"""The booking page's slot step: one provider, 14 days, under 32 concurrent clients, on PostgreSQL.

Target: p95 server time under 50 ms. Server time is what the app reports in its Server-Timing header (query,
slot computation and rendering); wrk's own latency adds the wait in gunicorn's queue, which with 2 sync
workers on 2 cores is mostly concurrency / throughput. Both are printed, beside a bare Flask endpoint served
the same way in the same run. The same page in Spanish (Accept-Language: es-MX) is measured in the same run
beside English, alternating rounds so that noise falls on both: target, Spanish p95 at most 10% above English.
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
# The languages measured, by the Accept-Language a browser of each sends.
LANGUAGES = {"en": "en-US,en;q=0.9", "es": "es-MX,es;q=0.9"}
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARM = min(2, SECONDS)
TARGET_P95_MS = 50.0
SPANISH_MAX_RATIO = 1.10
ROUNDS = 2  # English, Spanish, English, Spanish: each language's timings pooled over its rounds

# Each wrk thread appends the app's Server-Timing value of every response to one file (O_APPEND lines).
_TIMING_LUA = """
wrk.headers["Accept-Language"] = "%s"
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
        timings = {lang: workdir / f"server-timing-{lang}.txt" for lang in LANGUAGES}
        with gunicorn("services.booking:create_app()", env=env) as base:
            page = requests.get(base + path, headers={"Accept-Language": "en-US"}, timeout=10)
            page.raise_for_status()
            spanish = requests.get(base + path, headers={"Accept-Language": "es-MX"}, timeout=10)
            assert '<html lang="es">' in spanish.text
            assert '<html lang="en">' in page.text
            times_on_page = page.text.count('class="time"')
            days_with_times = page.text.count('class="day')
            for accept in LANGUAGES.values():  # warm both workers in both languages
                wrk(
                    base + path,
                    seconds=WARM,
                    connections=CONNECTIONS,
                    lua=_TIMING_LUA % (accept, "/dev/null"),
                )
            single = wrk(base + path, seconds=min(5, SECONDS), connections=1, threads=1)
            loaded = {lang: [] for lang in LANGUAGES}
            for _ in range(ROUNDS):
                for lang, accept in LANGUAGES.items():
                    lua = _TIMING_LUA % (accept, timings[lang])
                    loaded[lang].append(wrk(base + path, seconds=SECONDS, connections=CONNECTIONS, lua=lua))
        server = {
            lang: _percentiles([float(x) for x in timings[lang].read_text().split()]) for lang in LANGUAGES
        }
        print(
            f"slot step page: {len(page.content):,} bytes in English, {len(spanish.content):,} in Spanish, "
            f"{days_with_times} day buttons, {times_on_page} times on the first free day; "
            + ", ".join(
                f"{len(timings[lang].read_text().split()):,} {lang} server timings" for lang in LANGUAGES
            )
        )
        rows = [
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
                "slot step en, client latency",
                1,
                single.rps,
                single.p50_ms,
                single.p95_ms,
                single.p99_ms,
                single.errors + single.non2xx,
            ],
        ]
        for lang in LANGUAGES:
            runs = loaded[lang]
            worst = max(runs, key=lambda r: r.p95_ms)
            rps = sum(r.rps for r in runs) / len(runs)
            rows.append(
                [
                    f"slot step {lang}, client latency (worst round)",
                    CONNECTIONS,
                    rps,
                    worst.p50_ms,
                    worst.p95_ms,
                    worst.p99_ms,
                    sum(r.errors + r.non2xx for r in runs),
                ]
            )
            rows.append(
                [f"slot step {lang}, server time (Server-Timing)", CONNECTIONS, rps, *server[lang], ""]
            )
        table(
            f"Slot step (one provider, 14 days) on PostgreSQL, gunicorn 2 sync workers, wrk {SECONDS}s x {ROUNDS} "
            "rounds per language",
            ["what", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
            rows,
        )
        english_rps = sum(r.rps for r in loaded["en"]) / ROUNDS
        print(
            f"  slot step throughput (English) is {english_rps / bare.rps:.1%} of the bare Flask endpoint's"
        )
        en95, es95 = server["en"][1], server["es"][1]
        print(f"  Spanish p95 server time is {es95 / en95:.1%} of English's ({es95:.1f} ms vs {en95:.1f} ms)")
        verdict(
            "p95 server time of the slot step at 32 clients (English)",
            en95 < TARGET_P95_MS,
            f"{en95:.1f} ms (target < {TARGET_P95_MS:.0f} ms)",
        )
        verdict(
            "p95 server time of the slot step in Spanish beside English",
            es95 <= en95 * SPANISH_MAX_RATIO,
            f"{es95 / en95:.1%} of English (target <= {SPANISH_MAX_RATIO:.0%})",
        )
