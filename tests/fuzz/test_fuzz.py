"""Each service's API holds to its own OpenAPI document under schemathesis (every check, every phase), on both
engines, over real HTTP on 127.0.0.1; a failure prints a curl command that reproduces it. Why and how:
docs/architecture.md, "Input handling"; per-operation exceptions with their reasons: schemathesis.toml here.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from services.booking import create_app as create_booking_app
from services.booking import service
from services.booking.config import BookingConfig
from services.booking.seed import seed_demo
from services.consult import jobs as consult_jobs
from services.notify import jobs as notify_jobs
from shared.config import load
from shared.db import get_db
from shared.links import current_signer
from shared.timeutil import utcnow
from tests.consult.conftest import booking_event, build_app, consult_config
from tests.notify.conftest import notify_config
from tests.notify.factories import Booking
from tests.support.http import serve
from tests.support.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
STAFF_KEY = "dev-api-key"
SEED = 20261204
# Cases per operation in the fuzzing phase (the coverage phase makes its own): the whole set stays within about
# two minutes on two cores; notify and consult have few operations, so each gets more.
MAX_EXAMPLES = {"booking": 30, "notify": 100, "consult": 100, "checkins": 100}
PHASES = "examples,coverage,fuzzing,stateful"
SUMMARY = re.compile(r"\((?:in|took) [0-9.]+s\)|generated|Scenarios|API Links")


def _booking(database_url: str, redis_url: str) -> tuple[Flask, str]:
    app = create_booking_app(
        load(BookingConfig, environ={}, database_url=database_url, redis_url=redis_url, log_level="WARNING")
    )
    with app.app_context(), get_db().transaction() as session:
        demo = seed_demo(session=session)
        assert demo.booking is not None
        token = service.manage_token(current_signer(), demo.booking)
    # The patient's pages take a signed token no generator could guess: the demo booking's, so they are fuzzed
    # past the link check (its cancel and reschedule then make it outdated: 409s, as they should be).
    manage = (
        f'[[operations]]\ninclude-path-regex = "^/api/v1/manage/"\nparameters = {{ token = "{token}" }}\n'
    )
    return app, manage


def _notify(database_url: str, redis_url: str) -> tuple[Flask, str]:
    from services.notify import create_app

    app = create_app(notify_config(database_url, redis_url, log_level="WARNING"))
    now = utcnow()
    with app.app_context():
        notify_jobs.handle_booking_event(Booking(start=now + timedelta(days=2)).confirmed(at=now))
    return app, ""


def _consult(database_url: str, redis_url: str) -> tuple[Flask, str]:
    app = build_app(consult_config(database_url, redis_url, log_level="WARNING"))
    with app.app_context():
        consult_jobs.handle_booking_event(booking_event(start=utcnow() + timedelta(hours=1)))
    return app, ""


def _checkins(database_url: str, redis_url: str) -> tuple[Flask, str]:
    from services.checkins import create_app
    from services.checkins import jobs as checkins_jobs
    from tests.checkins.conftest import PATIENT, checkins_config
    from tests.checkins.conftest import booking_event as infusion_event

    app = create_app(checkins_config(database_url, redis_url, log_level="WARNING"))
    with app.app_context():
        checkins_jobs.handle_booking_event(infusion_event(start=utcnow() + timedelta(days=3)))
    # The demo patient's timeline and export, so those operations are fuzzed past the 404.
    patient = f'[[operations]]\ninclude-path-regex = "^/api/v1/patients/"\nparameters = {{ patient_id = "{PATIENT}" }}\n'
    return app, patient


SERVICES: dict[str, Callable[[str, str], tuple[Flask, str]]] = {
    "booking": _booking,
    "notify": _notify,
    "consult": _consult,
    "checkins": _checkins,
}


def _schemathesis(
    base: str, workdir: Path, extra_config: str, max_examples: int
) -> subprocess.CompletedProcess[str]:
    config = workdir / "schemathesis.toml"
    config.write_text((HERE / "schemathesis.toml").read_text() + "\n" + extra_config)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{base}/api/openapi.json",
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {STAFF_KEY}",
        "--phases",
        PHASES,
        "--max-examples",
        str(max_examples),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=280)


@pytest.fixture
def quiet() -> Iterator[Callable[[logging.Logger], None]]:
    """``quiet(logger)``: warnings and worse only, until the test ends."""
    changed: list[tuple[logging.Logger, int]] = []

    def silence(logger: logging.Logger) -> None:
        changed.append((logger, logger.level))
        logger.setLevel(logging.WARNING)

    yield silence
    for logger, level in changed:
        logger.setLevel(level)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("service", SERVICES)
def test_the_api_holds_to_its_openapi_document(
    service: str,
    backend: str,
    make_database_url: Callable[[str, str], str],
    redis_server: RedisServer,
    tmp_path: Path,
    quiet: Callable[[logging.Logger], None],
) -> None:
    quiet(logging.getLogger("werkzeug"))  # its access log: a line per case otherwise
    app, extra_config = SERVICES[service](make_database_url(service, backend), redis_server.url)
    try:
        started = time.monotonic()
        with serve(app) as base:
            result = _schemathesis(base, tmp_path, extra_config, MAX_EXAMPLES[service])
        took = time.monotonic() - started
    finally:
        app.extensions["db"].dispose()
    (tmp_path / "schemathesis.txt").write_text(result.stdout + result.stderr)
    summary = [line.strip() for line in result.stdout.splitlines() if SUMMARY.search(line)]
    print(f"{service}/{backend}: {took:.0f}s", *summary, sep="\n  ")
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
