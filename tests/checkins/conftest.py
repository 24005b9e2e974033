"""Checkins fixtures: a fresh migrated database per test on both backends, real Redis, a frozen clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from redis import Redis
from sqlalchemy import select

from services.checkins import create_app, jobs, scheduler
from services.checkins.config import CheckinsConfig
from services.checkins.models import Checkin
from services.checkins.runtime import get_runtime
from shared import events
from shared.config import load
from shared.db import get_db
from shared.links import CHECKIN, LinkSigner
from shared.queues import CHECKINS_QUEUE, NOTIFY_QUEUE, queue
from shared.worker import make_worker
from tests.support.servers import RedisServer

STAFF = {"Authorization": "Bearer dev-api-key"}
BASE_URL = "http://checkins.test"
# Monday 2 March 2026, 12:00 UTC; the first infusion is on Thursday 5 March at 15:00 UTC.
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FIRST = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)
SESSION = timedelta(minutes=60)
PATIENT = uuid.UUID("00000000-0000-4000-8000-000000000001")
COURSE = uuid.UUID("00000000-0000-4000-8000-0000000000c0")


def checkins_config(database_url: str, redis_url: str, **overrides: Any) -> CheckinsConfig:
    """Test settings (development; one on-call number and address)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "log_format": "text",
        "checkins_public_url": BASE_URL,
        "oncall_phones": ("+14155550100",),
        "oncall_emails": ("oncall@clinic.test",),
    }
    values.update(overrides)
    return load(CheckinsConfig, environ={}, **values)


@pytest.fixture
def database_url(backend: str, make_database_url: Callable[[str, str], str]) -> str:
    return make_database_url("checkins", backend)


@pytest.fixture
def app(database_url: str, redis_server: RedisServer) -> Iterator[Flask]:
    app = create_app(checkins_config(database_url, redis_server.url))
    app.config["TESTING"] = True
    yield app
    app.extensions["db"].dispose()


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    """Time stands at Monday 2 March 2026, 12:00 UTC until a test moves it."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def booking_event(
    kind: str = events.BOOKING_CONFIRMED,
    *,
    booking_id: uuid.UUID | None = None,
    version: int = 1,
    start: datetime = FIRST,
    type_slug: str = "infusion-session",
    patient_id: uuid.UUID = PATIENT,
    language: str = "en",
    course: tuple[int, int] | None = None,
    escort: events.EscortRef | None = None,
    previous: datetime | None = None,
) -> dict[str, Any]:
    """A booking event payload as the booking service publishes it (``course``: index and count)."""
    booking = events.BookingSnapshot(
        id=booking_id or uuid.uuid4(),
        version=version,
        status="cancelled" if kind == events.BOOKING_CANCELLED else "confirmed",
        start=start,
        end=start + SESSION,
        clinic=events.ClinicRef(slug="demo-clinic", name="Demo Clinic", time_zone="America/New_York"),
        appointment_type=events.AppointmentTypeRef(
            id=2,
            slug=type_slug,
            name="Infusion session",
            mode=events.IN_PERSON,
            duration_minutes=60,
            reminder_protocol=type_slug,
            location="200 Demo Avenue",
        ),
        provider=events.ProviderRef(
            id=7, name="Dr. Maya Chen", email="maya.chen@example.com", time_zone="America/New_York"
        ),
        patient=events.PatientRef(
            id=patient_id,
            name="Jordan Example",
            email="jordan@example.com",
            phone="+14155552671",
            time_zone="America/New_York",
            sms_consent=True,
            language=language,
        ),
        course=events.CourseRef(id=COURSE, index=course[0], sessions=course[1]) if course else None,
        escort=escort,
    )
    event = events.BookingEvent(
        type=kind,
        booking=booking,
        cancelled_by="patient" if kind == events.BOOKING_CANCELLED else None,
        previous=events.TimeRange(previous, previous + SESSION) if previous else None,
    )
    return events.dump_event(event)


def deliver(app: Flask, payload: dict[str, Any]) -> str:
    """Run the checkins handler on one delivery of ``payload``, as the worker does."""
    with app.app_context():
        if payload["type"] == events.REPLY_RATING:
            return jobs.handle_reply_rating(payload)
        return jobs.handle_booking_event(payload)


def checkins(app: Flask, **where: Any) -> list[Checkin]:
    """Check-in rows, by due time then step."""
    with app.app_context(), get_db().transaction() as session:
        query = select(Checkin).order_by(Checkin.due_at, Checkin.plan_step)
        for name, value in where.items():
            query = query.where(getattr(Checkin, name) == value)
        return list(session.scalars(query))


def schedule(app: Flask) -> dict[str, int]:
    """One scheduler round."""
    with app.app_context():
        return scheduler.schedule_once(get_runtime().publisher)


def queued(
    connection: Redis, name: str = NOTIFY_QUEUE, event_type: str | None = None
) -> list[dict[str, Any]]:
    """Event payloads waiting on queue ``name`` (of one type if given), oldest first."""
    found = []
    for job in queue(name, connection).get_jobs():
        (payload,) = job.args
        if event_type is None or payload.get("type") == event_type:
            found.append(payload)
    return found


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def checkin_token(app: Flask, checkin: Checkin) -> str:
    """The token of a check-in's link, as the published event carries it."""
    from services.checkins import links

    signer: LinkSigner = app.extensions["link_signer"]
    token = token_of(links.checkin_url(signer, BASE_URL, checkin))
    signer.verify(token, purpose=CHECKIN)
    return token


def work(app: Flask) -> None:
    """Run every queued checkins job with the service's own worker (it acknowledges events)."""
    with app.app_context():
        make_worker([CHECKINS_QUEUE]).work(burst=True, logging_level="WARNING")
