"""Booking app fixtures: a fresh migrated database per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from services.booking import create_app
from services.booking.config import BookingConfig
from shared.config import load
from tests.support.servers import RedisServer

STAFF = {"Authorization": "Bearer dev-api-key"}
# A Monday, so the default Monday-Friday hours are open from the next day on.
MONDAY_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def booking_config(
    backend: str, make_database_url: Callable[[str, str], str], redis_server: RedisServer
) -> BookingConfig:
    return load(
        BookingConfig,
        environ={},
        database_url=make_database_url("booking", backend),
        redis_url=redis_server.url,
        log_format="text",
    )


@pytest.fixture
def app(booking_config: BookingConfig) -> Iterator[Flask]:
    app = create_app(booking_config)
    app.config["TESTING"] = True
    yield app
    app.extensions["db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    """Time starts at Monday 2 March 2026, 12:00 UTC, and moves on normally."""
    with time_machine.travel(MONDAY_NOON, tick=True) as traveller:
        yield traveller


@pytest.fixture
def pages_config(booking_config: BookingConfig) -> BookingConfig:
    """Page-test settings: a roomy rate limit counted per app (the test of the limit sets its own)."""
    return dataclasses.replace(
        booking_config, booking_rate_limit="600 per minute", rate_limit_storage_url="memory://"
    )


@pytest.fixture
def pages_app(pages_config: BookingConfig) -> Iterator[Flask]:
    app = create_app(pages_config)
    app.config["TESTING"] = True
    yield app
    app.extensions["db"].dispose()


@pytest.fixture
def pages_client(pages_app: Flask) -> FlaskClient:
    return pages_app.test_client()
