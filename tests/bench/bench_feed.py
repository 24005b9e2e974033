"""A provider's calendar feed with 2,000 bookings, polled by 32 calendar clients at once, on PostgreSQL.

Target: p95 under 100 ms to serve the feed at 32 concurrent clients; with the ETag unchanged, 304 without
building the feed. Beside it, in the same run: the bare Flask endpoint (tests/bench/common.py), served the
same way (gunicorn, 2 sync workers).

What is measured (wrk, ``BENCH_SECONDS`` each):
1. the feed, gzip (what calendar apps ask for: Google, Apple and Outlook send Accept-Encoding: gzip);
2. the feed, uncompressed (1.4 MB a response);
3. If-None-Match with the current ETag: 304s. Every response's Server-Timing says whether that request
   built the feed ("build"); the script counts them, so "no rebuild" is counted, not assumed;
4. the cost of building: the first request after a change to one booking (one entry rebuilt, the rest from
   the per-process entry cache), and a cold build of all 2,000 entries in-process.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import insert

from services.notify import create_app, planning
from services.notify.calendar import service as feeds
from services.notify.config import NotifyConfig
from services.notify.models import CalendarInvite
from shared import events
from shared.config import load
from shared.timeutil import utcnow
from tests.bench.common import bare_flask, gunicorn, servers, table, verdict, wrk
from tests.notify.factories import Booking

BOOKINGS = int(os.environ.get("BENCH_FEED_BOOKINGS", "2000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = 32
TARGET_P95_MS = 100.0
PROVIDER = events.ProviderRef(id=7, name="Dr. Bench", email="bench@example.com", time_zone="America/New_York")

# Each wrk thread appends one line per response: status, and whether the request built the feed.
_COUNT_LUA = """
local path = "%s"
local out = nil
%s
response = function(status, headers, body)
  if out == nil then out = io.open(path, "a"); out:setvbuf("line") end
  local timing = headers["Server-Timing"] or headers["server-timing"] or ""
  local built = string.find(timing, "build;") and "built" or "-"
  local etag = string.match(timing, "etag;dur=([0-9.]+)") or "0"
  out:write(status, " ", built, " ", etag, "\\n")
end
"""


def _seed(url: str) -> None:
    """2,000 bookings for one provider from 30 days ago to six months ahead, as the events would make them:
    video and in-clinic, some with join links, some moved, some cancelled in the last week."""
    config = load(NotifyConfig, environ={}, database_url=url, provider_invites=True)
    app = create_app(config)
    runtime = app.extensions["notify"]
    now = utcnow()
    first = now - timedelta(days=29)
    step = (timedelta(days=200) - timedelta(days=29)) / BOOKINGS
    kinds = ("video-consultation", "infusion-session", "follow-up")
    records = []
    with app.app_context(), runtime.db.transaction() as session:
        for n in range(BOOKINGS):
            start = (first + step * n).replace(second=0, microsecond=0)
            booking = Booking(
                start=start,
                kind=kinds[n % 3],
                provider=PROVIDER,
                patient_name=f"Patient{n} Ñúñez-O'Brien, Jr.",
                id=uuid.uuid4(),
            )
            at = min(now, start) - timedelta(days=3)
            payloads = [booking.confirmed(at=at)]
            if n % 7 == 0:
                payloads.append(booking.reschedule(start + timedelta(hours=1), at=at))
            if n % 25 == 0 and booking.end > now:
                payloads.append(booking.cancel(at=now - timedelta(days=2)))
            for payload in payloads:
                planning.apply_booking_event(
                    session=session,
                    book=runtime.book,
                    event=events.load_event(payload),
                    quiet=None,
                    now=now,
                )
            if booking.kind != "infusion-session" and booking.status == "confirmed" and n % 2 == 0:
                planning.apply_links_ready(
                    session=session, event=events.load_links_ready(booking.links_ready(at=at)), now=now
                )
            records.append(
                {
                    "booking_id": booking.id,
                    "uid": f"booking-{booking.id}@127.0.0.1",
                    "sequence": len(payloads) - 1,
                    "updated_at": now,
                }
            )
        session.execute(insert(CalendarInvite), records)
    app.extensions["db"].dispose()


def _feed_path(url: str) -> str:
    config = load(NotifyConfig, environ={}, database_url=url)
    app = create_app(config)
    with app.app_context(), app.extensions["notify"].db.transaction() as session:
        link = feeds.feed_link(
            session=session,
            signer=app.extensions["link_signer"],
            config=config,
            provider_id=PROVIDER.id,
            now=utcnow(),
        )
    app.extensions["db"].dispose()
    return link.url.removeprefix(config.notify_public_url)


def _cold_build_ms(url: str) -> tuple[float, int]:
    """Build the whole feed in-process with empty caches (median of 3), and its size."""
    config = load(NotifyConfig, environ={}, database_url=url)
    app = create_app(config)
    runtime = app.extensions["notify"]
    times = []
    size = 0
    with app.app_context(), runtime.db.transaction() as session:
        now = utcnow()
        access = feeds.FeedAccess(
            provider_id=PROVIDER.id, token_version=1, expires_at=now + timedelta(days=300)
        )
        state = feeds.feed_state(access=access, salt="", now=now)
        for _ in range(3):
            started = time.perf_counter()
            built, _ = feeds.build_feed(
                session=session,
                access=access,
                state=state,
                config=config,
                book=runtime.book,
                cache=feeds.FeedCache(),
                now=now,
            )
            times.append((time.perf_counter() - started) * 1000)
            size = len(built.body)
    app.extensions["db"].dispose()
    return statistics.median(times), size


def _count(path: Path) -> dict[str, float]:
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    etag_ms = sorted(float(x[2]) for x in lines)
    return {
        "responses": len(lines),
        "built": sum(1 for x in lines if x[1] == "built"),
        "304": sum(1 for x in lines if x[0] == "304"),
        "200": sum(1 for x in lines if x[0] == "200"),
        "etag_p95": statistics.quantiles(etag_ms, n=100, method="inclusive")[94] if len(etag_ms) > 1 else 0.0,
    }


def _wait_out_day_turn(seconds: float) -> None:
    """If UTC midnight falls within the next ``seconds``, wait until it has passed.

    The feed's window, and so its ETag, moves at midnight: a 304 phase across it would see a new feed.
    """
    left = (feeds.window_day(utcnow()) + timedelta(days=1) - utcnow()).total_seconds()
    if left < seconds:
        time.sleep(left + 1)


def run() -> None:
    """Seed, serve and poll the feed; print the figures beside the bare Flask baseline."""
    with servers("notify", "bench_feed") as running:
        url, redis, workdir = running.database_url, running.redis, running.workdir
        started = time.perf_counter()
        _seed(url)
        print(
            f"seeded {BOOKINGS:,} bookings for one provider in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        path = _feed_path(url)
        cold_ms, _ = _cold_build_ms(url)
        env = {"NOTIFY_DATABASE_URL": url, "REDIS_URL": redis.url, "LOG_LEVEL": "WARNING"}

        with bare_flask() as base:
            wrk(base + "/", seconds=2, connections=CONNECTIONS)
            bare = wrk(base + "/", seconds=SECONDS, connections=CONNECTIONS)

        rows = []
        counts: dict[str, dict[str, float]] = {}
        with gunicorn("services.notify:create_app()", env=env) as base:
            _wait_out_day_turn(2 + 3 * SECONDS + 30)
            first = requests.get(base + path, timeout=30, headers={"Accept-Encoding": "identity"})
            first.raise_for_status()
            zipped = requests.get(base + path, timeout=30, headers={"Accept-Encoding": "gzip"}, stream=True)
            gzip_size = len(zipped.raw.read())
            entries = first.text.count("BEGIN:VEVENT")
            etag = first.headers["ETag"].strip('"')
            gzip_lua = 'wrk.headers["Accept-Encoding"] = "gzip"'
            wrk(
                base + path, seconds=2, connections=CONNECTIONS, lua=_COUNT_LUA % (workdir / "warm", gzip_lua)
            )
            for name, headers in (
                ("feed, gzip (as calendar apps ask)", gzip_lua),
                ("feed, uncompressed", 'wrk.headers["Accept-Encoding"] = "identity"'),
                ("304, If-None-Match with the ETag", f'wrk.headers["If-None-Match"] = \'"{etag}"\''),
            ):
                out = workdir / f"{len(rows)}.txt"
                result = wrk(
                    base + path, seconds=SECONDS, connections=CONNECTIONS, lua=_COUNT_LUA % (out, headers)
                )
                counts[name] = _count(out)
                rows.append(
                    [
                        name,
                        CONNECTIONS,
                        result.rps,
                        result.p50_ms,
                        result.p95_ms,
                        result.p99_ms,
                        result.errors,
                    ]
                )

            # One booking moves: the next request builds the feed again, reusing every other entry.
            app = create_app(load(NotifyConfig, environ={}, database_url=url))
            runtime = app.extensions["notify"]
            mover = Booking(start=utcnow() + timedelta(days=3), provider=PROVIDER)
            with app.app_context(), runtime.db.transaction() as session:
                planning.apply_booking_event(
                    session=session,
                    book=runtime.book,
                    event=events.load_event(mover.confirmed(at=utcnow())),
                    quiet=None,
                    now=utcnow(),
                )
            app.extensions["db"].dispose()
            rebuild = []
            for _ in range(6):  # each of the two workers builds once, the first time it is asked
                answer = requests.get(base + path, timeout=30, headers={"If-None-Match": f'"{etag}"'})
                timing = dict(
                    part.strip().split(";dur=") for part in answer.headers["Server-Timing"].split(",")
                )
                if "build" in timing:
                    rebuild.append(float(timing["build"]))

        print(
            f"feed: {entries:,} entries, {len(first.content):,} bytes ({gzip_size:,} gzip); "
            f"cold build of every entry in-process: {cold_ms:.0f} ms (median of 3)"
        )
        table(
            f"Provider feed ({BOOKINGS:,} bookings) on PostgreSQL, gunicorn 2 sync workers, wrk {SECONDS}s",
            ["what", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
            [
                [
                    "bare Flask (baseline)",
                    CONNECTIONS,
                    bare.rps,
                    bare.p50_ms,
                    bare.p95_ms,
                    bare.p99_ms,
                    bare.errors,
                ],
                *rows,
            ],
        )
        table(
            "What the server did (from each response's Server-Timing)",
            ["phase", "responses", "200", "304", "feeds built", "token + ETag p95 ms"],
            [
                [k, int(v["responses"]), int(v["200"]), int(v["304"]), int(v["built"]), v["etag_p95"]]
                for k, v in counts.items()
            ],
        )
        print(
            f"  after one booking changed, 6 requests: {len(rebuild)} rebuilt the feed (at most one per worker),"
            f" in {', '.join(f'{ms:.1f} ms' for ms in rebuild)} (1 entry built, {BOOKINGS - 1:,} from the entry"
            f" cache; a cold build of every entry: {cold_ms:.0f} ms)"
        )
        gz = next(r for r in rows if r[0].startswith("feed, gzip"))
        not_modified = counts["304, If-None-Match with the ETag"]
        verdict(
            f"p95 to serve the {BOOKINGS:,}-booking feed at 32 clients (gzip)",
            gz[4] < TARGET_P95_MS,
            f"{gz[4]:.1f} ms (target < {TARGET_P95_MS:.0f} ms; bare Flask {bare.p95_ms:.1f} ms)",
        )
        verdict(
            "unchanged ETag answered 304 without building",
            not_modified["built"] == 0 and not_modified["304"] == not_modified["responses"],
            f"{int(not_modified['304']):,} of {int(not_modified['responses']):,} were 304, "
            f"{int(not_modified['built'])} builds",
        )
