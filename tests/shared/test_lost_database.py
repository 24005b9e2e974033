"""A lost database connection is a 503 problem with Retry-After (a read is tried once more), never a 500.

On a real PostgreSQL: its backends terminated (as a failover does) or the server shut down and started again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

import shared.db
from services.booking import create_app
from services.booking.config import BookingConfig
from services.booking.models import Clinic
from shared.config import load
from shared.db import get_db
from tests.support.servers import PostgresServer, RedisServer

pytestmark = pytest.mark.postgres
STAFF = {"Authorization": "Bearer dev-api-key"}
CLINIC = {"slug": "after-restart", "name": "Clinic", "time_zone": "UTC"}


@pytest.fixture
def app(
    make_database_url: Callable[[str, str], str],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Flask]:
    # No ping before use: the first statement on a dead pooled connection is what meets the loss.
    monkeypatch.setattr(shared.db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    config = load(
        BookingConfig,
        environ={},
        database_url=make_database_url("booking", "postgresql"),
        redis_url=redis_server.url,
        log_format="text",
    )
    app = create_app(config)
    yield app
    app.extensions["db"].dispose()


def _terminate_backends(server: PostgresServer, app: Flask) -> None:
    database = make_url(app.extensions["db"].url).database
    server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


def _clinics(app: Flask) -> int:
    with app.app_context(), get_db().transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Clinic)) or 0)


def _assert_unavailable(response: object) -> None:
    assert response.status_code == 503  # type: ignore[attr-defined]
    assert response.mimetype == "application/problem+json"  # type: ignore[attr-defined]
    assert response.headers["Retry-After"] == "5"  # type: ignore[attr-defined]
    assert response.json["type"].endswith("/unavailable")  # type: ignore[attr-defined]


def test_a_read_whose_connection_was_ended_is_read_again(app: Flask, postgres_server: PostgresServer) -> None:
    client = app.test_client()
    assert client.get("/api/v1/clinics", headers=STAFF).status_code == 200  # a pooled connection now
    _terminate_backends(postgres_server, app)
    again = client.get("/api/v1/clinics", headers=STAFF)
    assert again.status_code == 200


def test_a_write_whose_connection_was_ended_is_a_503_and_changes_nothing(
    app: Flask, postgres_server: PostgresServer
) -> None:
    client = app.test_client()
    assert client.get("/api/v1/clinics", headers=STAFF).status_code == 200
    _terminate_backends(postgres_server, app)
    _assert_unavailable(client.post("/api/v1/clinics", json=CLINIC, headers=STAFF))
    assert _clinics(app) == 0
    assert client.post("/api/v1/clinics", json=CLINIC, headers=STAFF).status_code == 201


def test_a_server_restart_is_a_503_until_it_is_back(app: Flask, postgres_server: PostgresServer) -> None:
    client: FlaskClient = app.test_client()
    assert client.get("/api/v1/clinics", headers=STAFF).status_code == 200
    slots = "/api/v1/slots?provider_id=1&appointment_type_id=1&start=2026-03-03T00:00:00Z&end=2026-03-04T00:00:00Z"
    with postgres_server.shut_down():
        _assert_unavailable(client.get(slots))  # the pooled connection got AdminShutdown; no server to retry
        _assert_unavailable(client.post("/api/v1/clinics", json=CLINIC, headers=STAFF))
        page = client.get("/book/demo-clinic")  # the patient's pages say so in a page
        assert (page.status_code, page.mimetype, page.headers["Retry-After"]) == (503, "text/html", "5")
    assert client.get("/api/v1/clinics", headers=STAFF).status_code == 200
    assert client.get(slots).status_code == 404  # no such provider: the database answers again
