"""Consult fixtures: a fresh migrated database per test on both backends, real Redis, a steerable clock."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from services.consult import create_app, jobs
from services.consult.config import TWILIO, ConsultConfig
from services.consult.models import Consultation
from services.consult.pages import SDK_FILE
from shared import events
from shared.config import load
from shared.db import get_db
from shared.links import LinkSigner, join_token, new_secret
from shared.queues import NOTIFY_QUEUE, queue
from tests.support.servers import RedisServer
from tests.support.twilio_mock import ROOT, PrismServer, ensure_node_parts

STAFF = {"Authorization": "Bearer dev-api-key"}
# Tuesday 3 March 2026, 12:00 UTC; the test appointment starts at 15:00 UTC (10:00 in New York).
NOON = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
START = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
DURATION = timedelta(minutes=45)
TWILIO_ACCOUNT = "AC" + "1" * 32
TWILIO_KEY = "SK" + "2" * 32
TWILIO_SECRET = "test-api-key-secret-0123456789abcdef"


def ensure_video_sdk() -> None:
    """Copy the Twilio Video SDK where the consult service serves it (what ``make install`` does)."""
    target = ROOT / "services/consult/static" / SDK_FILE
    if not target.exists():
        ensure_node_parts()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "node_modules/twilio-video/dist/twilio-video.min.js", target)


def consult_config(database_url: str, redis_url: str, **overrides: Any) -> ConsultConfig:
    """Test settings (development environment, local video unless overridden)."""
    return load(
        ConsultConfig,
        environ={},
        database_url=database_url,
        redis_url=redis_url,
        log_format="text",
        consult_public_url="http://consult.test",
        **overrides,
    )


def twilio_overrides(prism: PrismServer) -> dict[str, Any]:
    """Settings that point the Twilio provider at the contract mock."""
    return {
        "video_provider": TWILIO,
        "twilio_account_sid": TWILIO_ACCOUNT,
        "twilio_api_key_sid": TWILIO_KEY,
        "twilio_api_key_secret": TWILIO_SECRET,
        "twilio_video_base_url": prism.url,
    }


def build_app(config: ConsultConfig) -> Flask:
    app = create_app(config)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def database_url(backend: str, make_database_url: Callable[[str, str], str]) -> str:
    return make_database_url("consult", backend)


@pytest.fixture
def app(database_url: str, redis_server: RedisServer) -> Iterator[Flask]:
    """The consult app with the local video provider."""
    app = build_app(consult_config(database_url, redis_server.url))
    yield app
    app.extensions["db"].dispose()


@pytest.fixture
def twilio_app(
    database_url: str, redis_server: RedisServer, twilio_video_mock: PrismServer
) -> Iterator[Flask]:
    """The consult app with Twilio Video, pointed at Prism."""
    ensure_video_sdk()
    app = build_app(consult_config(database_url, redis_server.url, **twilio_overrides(twilio_video_mock)))
    yield app
    app.extensions["db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    """Time stands at Tuesday 3 March 2026, 12:00 UTC until a test moves it."""
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


def booking_event(
    kind: str = events.BOOKING_CONFIRMED,
    *,
    booking_id: uuid.UUID | None = None,
    version: int = 1,
    start: datetime = START,
    duration: timedelta = DURATION,
    mode: str = events.VIDEO,
    correlation_id: str = "corr-test-1",
) -> dict[str, Any]:
    """A booking event payload as the booking service publishes it."""
    booking = events.BookingSnapshot(
        id=booking_id or uuid.uuid4(),
        version=version,
        status="cancelled" if kind == events.BOOKING_CANCELLED else "confirmed",
        start=start,
        end=start + duration,
        clinic=events.ClinicRef(slug="demo-clinic", name="Demo Clinic", time_zone="America/New_York"),
        appointment_type=events.AppointmentTypeRef(
            id=1,
            slug="video-consultation",
            name="Video consultation",
            mode=mode,
            duration_minutes=int(duration.total_seconds() // 60),
            reminder_protocol="video-consultation",
            location="" if mode == events.VIDEO else "200 Demo Avenue",
        ),
        provider=events.ProviderRef(
            id=7, name="Dr. Maya Chen", email="maya.chen@example.com", time_zone="America/Los_Angeles"
        ),
        patient=events.PatientRef(
            id=uuid.uuid4(),
            name="Jordan Example",
            email="jordan@example.com",
            phone="+14155552671",
            time_zone="Europe/London",
            sms_consent=True,
        ),
    )
    event = events.BookingEvent(
        type=kind,
        booking=booking,
        correlation_id=correlation_id,
        cancelled_by="patient" if kind == events.BOOKING_CANCELLED else None,
    )
    return events.dump_event(event)


def deliver(app: Flask, payload: dict[str, Any]) -> str:
    """Run the consult handler on one delivery of ``payload``, as the worker does."""
    with app.app_context():
        return jobs.handle_booking_event(payload)


def signer_of(app: Flask) -> LinkSigner:
    signer: LinkSigner = app.extensions["link_signer"]
    return signer


def token_for(
    app: Flask,
    booking_id: uuid.UUID | str,
    *,
    version: int = 1,
    participant: str = "patient",
    end: datetime | None = None,
) -> str:
    """A join token as consult mints it: the stored secret for the current version, else another one."""
    with app.app_context(), get_db().transaction() as session:
        consultation = session.get(Consultation, uuid.UUID(str(booking_id)))
        current = consultation is not None and consultation.version == version
        secret = (consultation.link_secret if current and consultation else None) or new_secret()
    return join_token(
        signer_of(app),
        booking_id=str(booking_id),
        version=version,
        participant=participant,
        ends_at=end or START + DURATION,
        secret=secret,
    )


def booking_id_of(payload: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(payload["booking"]["id"])


def links_ready_jobs(connection: redis.Redis) -> list[dict[str, Any]]:
    """The consult.links_ready payloads waiting on notify's queue, oldest first."""
    notify = queue(NOTIFY_QUEUE, connection)
    found = []
    for job in notify.get_jobs():
        (payload,) = job.args
        if payload["type"] == events.CONSULT_LINKS_READY:
            found.append(payload)
    return found


def artifact_dir(name: str) -> Path:
    """A directory under artifacts/ (gitignored) for files a reviewer may want to look at."""
    path = ROOT / "artifacts" / name
    path.mkdir(parents=True, exist_ok=True)
    return path
