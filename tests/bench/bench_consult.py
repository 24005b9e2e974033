"""Join-page token issue under 32 concurrent clients: POST /api/v1/join/<token>/access with the room open.

The consult service runs under gunicorn with the deploy config and the Twilio provider, pointed at a port
where nothing listens: with the room already recorded as open, a join must not call Twilio at all, so any
call would show up as a 503 (non-2xx) in the figures. Beside it, the bare-Flask baseline from the same run.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import requests

from services.consult import create_app, jobs, publishing, rooms
from services.consult.config import ConsultConfig
from services.consult.models import Consultation
from services.consult.video import RoomInfo
from shared import events
from shared.config import load
from shared.db import get_db
from shared.migrate import upgrade
from shared.timeutil import utcnow
from tests.bench.common import POST_JSON, LoadResult, bare_flask, gunicorn, table, verdict, wrk
from tests.support.servers import PostgresServer, RedisServer, free_port

TARGET_P95_MS = 30.0

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))  # each wrk run
WARM = min(2, SECONDS)


def _alternating(paths: list[str]) -> str:
    """Lua that POSTs ``{}`` to each path in turn (the patient's and the provider's link)."""
    listed = ", ".join(f'"{p}"' for p in paths)
    return (
        POST_JSON
        + f"""
local paths = {{{listed}}}
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, paths[(n % #paths) + 1])
end
"""
    )


def _environment(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "SUITE_ENV": "development",
        "CONSULT_DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "VIDEO_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_API_KEY_SID": "SK" + "2" * 32,
        "TWILIO_API_KEY_SECRET": "bench-api-key-secret-0123456789abcdef",
        # Nothing listens here: a Twilio call would fail fast and count as an error.
        "TWILIO_VIDEO_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "TWILIO_TIMEOUT_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
    }


def _seed(env: dict[str, str]) -> list[str]:
    """A video booking that started 5 minutes ago, its room recorded as open; return its two join paths."""
    app = create_app(load(ConsultConfig, environ=env))
    start = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    booking_id = uuid.uuid4()
    snapshot = events.BookingSnapshot(
        id=booking_id,
        version=1,
        status="confirmed",
        start=start,
        end=start + timedelta(minutes=45),
        clinic=events.ClinicRef(slug="bench", name="Bench Clinic", time_zone="America/New_York"),
        appointment_type=events.AppointmentTypeRef(
            id=1,
            slug="video",
            name="Video",
            mode=events.VIDEO,
            duration_minutes=45,
            reminder_protocol="video-consultation",
        ),
        provider=events.ProviderRef(
            id=1, name="Dr. Bench", email="dr@example.com", time_zone="America/New_York"
        ),
        patient=events.PatientRef(
            id=uuid.uuid4(),
            name="Pat Bench",
            email="pat@example.com",
            time_zone="Europe/London",
            sms_consent=False,
        ),
    )
    payload = events.dump_event(events.BookingEvent(type=events.BOOKING_CONFIRMED, booking=snapshot))
    with app.app_context():
        jobs.handle_booking_event(payload)
        with get_db().transaction() as session:
            rooms.record_room(
                session=session,
                booking_id=booking_id,
                version=1,
                provider="twilio",
                info=RoomInfo(sid="RM" + "a" * 32, status="in-progress"),
            )
        signer = app.extensions["link_signer"]
        with get_db().transaction() as session:
            links = publishing.join_links(signer, "", session.get(Consultation, booking_id))
        paths = [f"/api/v1{links[p]}/access" for p in ("patient", "provider")]  # links[p]: /join/<token>
    app.extensions["db"].dispose()
    return paths


def _row(label: str, result: LoadResult) -> list[object]:
    return [label, result.rps, result.p50_ms, result.p95_ms, result.p99_ms, result.errors + result.non2xx]


def _measure(env: dict[str, str], *, page_too: bool = False, workers: int = 2) -> list[LoadResult]:
    """Token issue (and, if asked, the join page itself) under load."""
    paths = _seed(env)
    results = []
    with gunicorn("services.consult:create_app()", env=env, workers=workers) as base:
        check = requests.post(base + paths[0], json={}, timeout=5)
        check.raise_for_status()
        assert check.json()["provider"] == "twilio"
        wrk(base + paths[0], seconds=WARM, lua=_alternating(paths))  # warm-up: pools, imports, caches
        results.append(wrk(base + paths[0], seconds=SECONDS, lua=_alternating(paths)))
        if page_too:
            page = paths[0].removeprefix("/api/v1").removesuffix("/access")
            results.append(wrk(base + page, seconds=SECONDS))
    return results


def run() -> None:
    """Print p50/p95/p99 and throughput of token issue beside the bare-Flask baseline."""
    with tempfile.TemporaryDirectory(prefix="bench-consult-") as tmp:
        redis_server = RedisServer(Path(tmp))
        postgres = PostgresServer()
        redis_server.start()
        postgres.start()
        try:
            with bare_flask() as bare:
                wrk(bare + "/", seconds=WARM, lua=POST_JSON)
                baseline = wrk(bare + "/", seconds=SECONDS, lua=POST_JSON)
            postgres.execute("CREATE DATABASE consult_bench")
            pg_url = postgres.url("consult_bench")
            upgrade(service="consult", url=pg_url)
            sqlite_url = f"sqlite:///{tmp}/consult-bench.db"
            upgrade(service="consult", url=sqlite_url)
            on_postgres, page = _measure(_environment(pg_url, redis_server.url), page_too=True)
            (on_sqlite,) = _measure(_environment(sqlite_url, redis_server.url))
            # Sync workers wait for PostgreSQL doing nothing; gunicorn suggests 2 x cores + 1 of them.
            (four_workers,) = _measure(_environment(pg_url, redis_server.url), workers=4)
        finally:
            postgres.stop()
            redis_server.stop()
    table(
        "Join with the room open (no Twilio call): 32 connections, 2 gunicorn workers, 10 s each",
        ["endpoint", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors+non2xx"],
        [
            _row("bare Flask POST (baseline)", baseline),
            _row("POST join/<token>/access, PostgreSQL", on_postgres),
            _row("POST join/<token>/access, SQLite", on_sqlite),
            _row("GET /join/<token> page, PostgreSQL", page),
            _row("POST join/<token>/access, PostgreSQL, 4 workers", four_workers),
        ],
    )
    errors = on_postgres.errors + on_postgres.non2xx
    verdict(
        f"token issue p95 under {TARGET_P95_MS:.0f} ms (PostgreSQL, the production engine)",
        on_postgres.p95_ms < TARGET_P95_MS and errors == 0,
        f"p95 {on_postgres.p95_ms:.2f} ms vs baseline {baseline.p95_ms:.2f} ms, {errors} errors",
    )
