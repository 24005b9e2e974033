"""The four services side by side on one real Redis, each on its own fresh database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis
import time_machine
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from services.booking import create_app as create_booking
from services.booking.config import BookingConfig
from services.checkins import create_app as create_checkins
from services.checkins.config import CheckinsConfig
from services.consult import create_app as create_consult
from services.consult.config import ConsultConfig
from services.notify import create_app as create_notify
from services.notify.config import NotifyConfig
from services.notify.runtime import worker_queues
from shared.config import load
from shared.queues import NOTIFY_QUEUE
from shared.worker import make_worker
from tests.support.servers import RedisServer

STAFF = {"Authorization": "Bearer dev-api-key"}
# A Monday, so the test clinic's Monday-Friday hours are open from the next day on.
MONDAY_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class Suite:
    """The four service apps, sharing one Redis."""

    booking: Flask
    notify: Flask
    consult: Flask
    checkins: Flask
    redis: redis.Redis

    def apps(self) -> tuple[Flask, Flask, Flask, Flask]:
        return self.booking, self.notify, self.consult, self.checkins


def build_suite(backend: str, make_database_url: Callable[[str, str], str], redis_url: str) -> Suite:
    """Apps of the four services on fresh databases of ``backend``."""
    common = {"environ": {}, "redis_url": redis_url, "log_format": "json"}
    booking = create_booking(
        load(BookingConfig, database_url=make_database_url("booking", backend), **common)  # type: ignore[arg-type]
    )
    notify = create_notify(
        load(NotifyConfig, database_url=make_database_url("notify", backend), **common)  # type: ignore[arg-type]
    )
    consult = create_consult(
        load(
            ConsultConfig,
            database_url=make_database_url("consult", backend),
            consult_public_url="http://consult.test",
            **common,  # type: ignore[arg-type]
        )
    )
    checkins = create_checkins(
        load(
            CheckinsConfig,
            database_url=make_database_url("checkins", backend),
            checkins_public_url="http://checkins.test",
            **common,  # type: ignore[arg-type]
        )
    )
    for app in (booking, notify, consult, checkins):
        app.config["TESTING"] = True
    return Suite(booking, notify, consult, checkins, redis.Redis.from_url(redis_url))


@pytest.fixture
def suite(
    backend: str,
    make_database_url: Callable[[str, str], str],
    redis_server: RedisServer,
    redis_client: redis.Redis,
) -> Iterator[Suite]:
    built = build_suite(backend, make_database_url, redis_server.url)
    yield built
    for app in built.apps():
        app.extensions["db"].dispose()


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    """Time starts at Monday 2 March 2026, 12:00 UTC, and moves on normally."""
    with time_machine.travel(MONDAY_NOON, tick=True) as traveller:
        yield traveller


def work(app: Flask, queue_name: str) -> None:
    """Run ``app``'s worker on ``queue_name`` until the queue is empty (the real RQ worker, in burst mode).

    Notify's events queue means a notify worker: it takes the urgent and routine send queues too.
    """
    names = worker_queues() if queue_name == NOTIFY_QUEUE else [queue_name]
    with app.app_context():
        make_worker(names).work(burst=True, logging_level=None)


def samples(body: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` in a metrics page."""
    total = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def exported_names(body: str) -> set[str]:
    """Every metric family and sample name a metrics page exports."""
    names = set()
    for family in text_string_to_metric_families(body):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names
