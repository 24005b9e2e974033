"""Database helpers: read-only sessions without transaction round trips, and pings only after idle, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, event, text
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError

import shared.db
from services.booking.models import Clinic
from shared.db import Database


def test_a_read_session_sends_its_query_alone_and_leaves_the_pool_transactional(
    backend: str, make_database_url: Callable[[str, str], str]
) -> None:
    db = Database(make_database_url("booking", backend), pool_size=1)
    sent: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda _c, _k, statement, *_a: sent.append(statement))
    try:
        with db.read_sessionmaker() as session:
            assert session.execute(text("SELECT count(*) FROM providers")).scalar_one() == 0
            driver: Any = session.connection().connection.driver_connection
            if backend == "postgresql":
                # No BEGIN went before the query and none is open after it: one round trip for the read.
                assert driver.autocommit is True
                assert driver.info.transaction_status == TransactionStatus.IDLE
            else:
                # SQLite keeps its transaction (BEGIN IMMEDIATE orders its writers).
                assert driver.in_transaction
                assert "BEGIN IMMEDIATE" in sent
        # The same pooled connection, taken for a write, is transactional again: a rollback undoes the insert.
        with db.sessionmaker() as session:
            session.add(Clinic(slug="c", name="Clinic", time_zone="UTC"))
            session.flush()
            driver = session.connection().connection.driver_connection
            if backend == "postgresql":
                assert driver.autocommit is False
            session.rollback()
        with db.read_sessionmaker() as session:
            assert session.execute(text("SELECT count(*) FROM clinics")).scalar_one() == 0
    finally:
        db.dispose()


def _backend_pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(db: Database, pid: int) -> None:
    # From another connection, as a server restart or a failover would.
    other = Database(db.url)
    try:
        with other.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        other.dispose()


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The pings the pool sends (each is a round trip)."""
    sent: list[object] = []
    original = PGDialect_psycopg.do_ping

    def counted(self: Any, dbapi_connection: Any) -> bool:
        sent.append(dbapi_connection)
        return bool(original(self, dbapi_connection))

    monkeypatch.setattr(PGDialect_psycopg, "do_ping", counted)
    return sent


@pytest.mark.postgres
def test_a_connection_used_a_moment_ago_is_not_pinged(
    make_database_url: Callable[[str, str], str], pings: list[object]
) -> None:
    db = Database(make_database_url("booking", "postgresql"), pool_size=1)
    try:
        for _ in range(5):
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        assert pings == []
    finally:
        db.dispose()


@pytest.mark.postgres
def test_an_idle_connection_whose_server_side_is_gone_is_replaced_before_use(
    make_database_url: Callable[[str, str], str], pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared.db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as after idle
    db = Database(make_database_url("booking", "postgresql"), pool_size=1)
    try:
        with db.engine.connect() as conn:
            first = _backend_pid(conn)
        _terminate(db, first)
        with db.engine.connect() as conn:  # pinged, found dead, replaced: the caller sees nothing of it
            assert _backend_pid(conn) != first
        assert len(pings) >= 1
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_server_gone_within_the_idle_window_fails_one_use_then_the_pool_reconnects(
    make_database_url: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The price of skipping the ping: the first query on a connection whose server side vanished within
    # the last PING_AFTER_IDLE_SECONDS fails (as a query in flight at that moment would anyway).
    monkeypatch.setattr(shared.db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    db = Database(make_database_url("booking", "postgresql"), pool_size=1)
    try:
        with db.engine.connect() as conn:
            first = _backend_pid(conn)
        _terminate(db, first)
        with pytest.raises(DBAPIError) as failed, db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated
        with db.engine.connect() as conn:
            assert _backend_pid(conn) != first
    finally:
        db.dispose()
