"""Notify fixtures: a fresh migrated database per test (SQLite and PostgreSQL), real Redis, a frozen clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import select

from services.booking import create_app as create_booking_app
from services.booking.config import BookingConfig
from services.booking.relay import relay_once
from services.notify import create_app, jobs
from services.notify.config import NotifyConfig
from services.notify.dispatch import PassReport, dispatch_now, dispatch_once
from services.notify.models import Message, OutboxMessage
from services.notify.runtime import Runtime, worker_queues
from services.notify.senders import Senders
from shared.config import load
from shared.worker import make_worker
from tests.support.servers import RedisServer

STAFF = {"Authorization": "Bearer dev-api-key"}
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
# Monday 2 March 2026, 12:00 UTC (12:00 in London, the patient's zone).
MONDAY_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def notify_config(database_url: str, redis_url: str, **overrides: Any) -> NotifyConfig:
    """Settings for a test app (console senders unless overridden)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "log_format": "text",
        "twilio_auth_token": AUTH_TOKEN,
        "notify_public_url": "https://notify.example.test",
        "booking_public_url": "https://booking.example.test",
        # These tests count the patient's messages; provider invites are on where they matter (the property
        # and end-to-end tests) and have their own tests in tests/notify/calendar.
        "provider_invites": False,
    }
    values.update(overrides)
    return load(NotifyConfig, environ={}, **values)


@pytest.fixture
def make_app(
    backend: str, make_database_url: Callable[[str, str], str], redis_client: Redis, redis_server: RedisServer
) -> Iterator[Callable[..., Flask]]:
    """``make_app(senders=None, **settings)``: a notify app on a new database of the test's backend."""
    made: list[Flask] = []

    def make(*, senders: Senders | None = None, database_url: str | None = None, **overrides: Any) -> Flask:
        config = notify_config(
            database_url or make_database_url("notify", backend), redis_server.url, **overrides
        )
        app = create_app(config, senders=senders)
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["db"].dispose()


@dataclasses.dataclass(frozen=True)
class Upstream:
    """The booking service in front of notify: its staff API and its outbox relay to Redis."""

    app: Flask
    staff: FlaskClient

    def relay(self) -> int:
        """Move the booking outbox to Redis, as the relay process does; the number of events moved."""
        with self.app.app_context():
            return relay_once(db=self.app.extensions["db"], redis=self.app.extensions["redis"])


@pytest.fixture
def upstream(
    backend: str, make_database_url: Callable[[str, str], str], redis_server: RedisServer
) -> Iterator[Upstream]:
    """A booking service on the test's backend and Redis, for end-to-end tests through the queue."""
    booking_app = create_booking_app(
        load(
            BookingConfig,
            environ={},
            database_url=make_database_url("booking", backend),
            redis_url=redis_server.url,
            booking_public_url="https://booking.example.test",
            log_format="text",
        )
    )
    yield Upstream(booking_app, booking_app.test_client())
    booking_app.extensions["db"].dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["notify"]
    return runtime


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    """Time stands at Monday 2 March 2026, 12:00 UTC until a test moves it."""
    with time_machine.travel(MONDAY_NOON, tick=False) as traveller:
        yield traveller


def use_senders(app: Flask, *, sms: Any = None, email: Any = None) -> None:
    """Swap the app's SMS and/or email sender (the console ones record into the app's database)."""
    runtime: Runtime = app.extensions["notify"]
    senders = Senders(sms=sms or runtime.senders.sms, email=email or runtime.senders.email)
    app.extensions["notify"] = dataclasses.replace(runtime, senders=senders)


def twilio_sender(http_client: Any = None, base_url: str = "") -> Any:
    """A Twilio SMS sender with test credentials, over ``http_client`` or to ``base_url``."""
    from services.notify.senders.twilio_sms import TwilioSmsSender
    from tests.notify.doubles import ACCOUNT_SID, MESSAGING_SERVICE_SID

    return TwilioSmsSender(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        messaging_service_sid=MESSAGING_SERVICE_SID,
        api_base_url=base_url,
        http_client=http_client,
    )


@pytest.fixture
def no_send_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Event jobs queue their urgent messages as send jobs instead of claiming and sending them
    (jobs._claim_inline, jobs._send_now): for a test that needs a confirmation planned and not sent yet, as
    when its worker died before sending."""
    monkeypatch.setattr(jobs, "_claim_inline", lambda *args, **kwargs: None)
    monkeypatch.setattr(jobs, "_send_now", dispatch_now)


def deliver(app: Flask, payload: dict[str, Any]) -> str:
    """Run the notify handler of a booking, course or links event, as the queue would."""
    with app.app_context():
        if payload["type"] == "consult.links_ready":
            return jobs.handle_links_ready(payload)
        if payload["type"] == "course.changed":
            return jobs.handle_course_event(payload)
        return jobs.handle_booking_event(payload)


class BurstWorker(SimpleWorker):
    """The notify worker, minus its command channel: a burst run need not listen for "stop" commands, and
    tearing that listener down costs up to a second per run."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def work(app: Flask) -> None:
    """Run every queued notify job on a real Redis with a burst SimpleWorker, as ``flask worker`` would."""
    with app.app_context():
        template = make_worker(worker_queues())
        worker = BurstWorker(template.queues, connection=template.connection, serializer=template.serializer)
        worker.work(burst=True, logging_level="WARNING")


def dispatch(app: Flask) -> PassReport:
    """One dispatcher pass."""
    with app.app_context():
        return dispatch_once(app.extensions["notify"])


def tick(app: Flask) -> PassReport:
    """A dispatcher pass, then the worker drains the queues (twice: sends may queue follow-ups)."""
    work(app)
    report = dispatch(app)
    work(app)
    return report


def messages(app: Flask, **where: Any) -> list[Message]:
    """Plan rows, oldest first, optionally filtered by column values."""
    with app.app_context():
        runtime: Runtime = app.extensions["notify"]
        with runtime.db.transaction() as session:
            query = select(Message).order_by(Message.id)
            for name, value in where.items():
                query = query.where(getattr(Message, name) == value)
            return list(session.scalars(query))


def outbox(app: Flask, channel: str | None = None) -> list[OutboxMessage]:
    """What the console senders recorded, oldest first."""
    with app.app_context():
        runtime: Runtime = app.extensions["notify"]
        with runtime.db.transaction() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if channel:
                query = query.where(OutboxMessage.channel == channel)
            return list(session.scalars(query))


def by_step(app: Flask, **where: Any) -> dict[tuple[str, str], Message]:
    """Plan rows keyed by (step, channel) (for one booking version)."""
    return {(m.step, m.channel): m for m in messages(app, **where)}
