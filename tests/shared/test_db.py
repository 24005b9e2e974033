"""Database helpers: the read-only sessions that skip the transaction round trips on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy import event, text

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
