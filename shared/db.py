"""Database helpers on SQLAlchemy 2: engines for SQLite and PostgreSQL, sessions, a UTC datetime type.

Every service owns its own database and its own declarative ``Base``; this module only knows how to connect.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import (
    JSON,
    BigInteger,
    Dialect,
    Engine,
    Integer,
    String,
    create_engine,
    event,
    insert,
    inspect,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.types import DateTime, TypeDecorator

# Deterministic constraint names, so migrations can address them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JSONDocument(TypeDecorator[Any]):
    """JSON, stored as JSONB on PostgreSQL."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


class BigIntKey(TypeDecorator[int]):
    """A 64-bit integer key that is still SQLite's auto-incrementing ``INTEGER PRIMARY KEY``."""

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(Integer() if dialect.name == "sqlite" else BigInteger())


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (timestamptz on PostgreSQL, ISO text on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class GUID(TypeDecorator[uuid.UUID]):
    """A UUID stored as native uuid on PostgreSQL and as 32 hex characters elsewhere."""

    impl = String(32)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import UUID

            return dialect.type_descriptor(UUID(as_uuid=True))
        return dialect.type_descriptor(String(32))

    def process_bind_param(self, value: uuid.UUID | str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        return value if dialect.name == "postgresql" else value.hex

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None:
            return None
        return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Create an engine with the settings each backend needs for correct concurrent writes."""
    # hide_parameters: bound values (patients' names and contacts) never reach an error's text, or a log.
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of one
            # failing when it upgrades a stale read snapshot. Concurrency is SQLite's weak point anyway;
            # PostgreSQL is the production engine.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, hide_parameters=True)
    _ping_when_idle(engine)
    _gone_is_disconnect(engine)
    return engine


def _gone_is_disconnect(engine: Engine) -> None:
    # A terminated backend (failover, pg_terminate_backend) answers with SQLSTATE 57P01-3, which SQLAlchemy's
    # psycopg dialect does not count as a disconnect: its connection would go back to the pool half-broken
    # ("another command is already in progress"). Counted, the connection and the pool are invalidated.
    @event.listens_for(engine, "handle_error")
    def _handle_error(context: Any) -> None:
        if not context.is_disconnect and _gone(getattr(context.original_exception, "sqlstate", None)):
            context.is_disconnect = True


# A pooled connection is pinged before use only after idling this long (docs/architecture.md, Decisions).
PING_AFTER_IDLE_SECONDS = 0.5


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get("checked_in")
        if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool drops this connection and checks out another (a new one if need be).
                raise DisconnectionError() from exc
            raise


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # Read-only requests run in autocommit on PostgreSQL; SQLite keeps its transactions (docs/modules.md).
        reader = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else self.engine
        )
        self.read_sessionmaker = sessionmaker(reader, expire_on_commit=False)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back if it raises."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close pooled connections (after a fork, or at shutdown)."""
        self.engine.dispose()


def init_app(app: Flask, db: Database) -> None:
    """Attach ``db`` to ``app`` and close the request's session when the request ends."""
    app.extensions["db"] = db

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        close_sessions()


def close_sessions() -> None:
    """Close the current app context's sessions (the next ``get_session`` starts a new one)."""
    for name in ("db_session", "db_read_session"):
        session = g.pop(name, None)
        if session is not None:
            try:
                session.close()
            except DBAPIError:
                session.invalidate()  # its rollback met a broken connection: drop it, not the request


def get_db() -> Database:
    """The current app's database."""
    db: Database = current_app.extensions["db"]
    return db


def get_session() -> Session:
    """The session of the current app context, created on first use."""
    if "db_session" not in g:
        g.db_session = get_db().sessionmaker()
    session: Session = g.db_session
    return session


def get_read_session() -> Session:
    """A session of the current app context for reads only (see ``Database.read_sessionmaker``); never write
    through it."""
    if "db_read_session" not in g:
        g.db_read_session = get_db().read_sessionmaker()
    session: Session = g.db_read_session
    return session


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether ``exc`` is a unique or primary-key violation (on either backend)."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    message = str(orig).lower()
    return "unique constraint failed" in message


def dialect_insert(session: Session, model: Any) -> Any:
    """An INSERT for this session's backend, so ``on_conflict_*`` works on SQLite and PostgreSQL."""
    return insert_of(session.get_bind().dialect.name)(model)


def insert_of(dialect: str) -> Callable[..., Any]:
    """The dialect's ``insert`` (with ``on_conflict_*``), for statements built once per dialect."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def insert_now(session: Session, obj: Any) -> None:
    """INSERT a new mapped object with one Core statement now, and make it persistent in ``session``.

    For the hot path of a request: the unit of work's flush costs more than the INSERT itself. Column
    defaults are applied here in Python (so the object holds them), a version column starts at 1, and the
    object must not be in a session yet. It behaves afterwards as if it had been loaded.
    """
    state = inspect(obj)
    statement, columns = _insert_plan(state.mapper)
    values = {}
    given = state.dict
    for name, key, default in columns:
        value = given.get(key)
        if value is None:
            if default is not None:
                value = default()
            setattr(obj, key, value)  # set, so it is not expired (and loaded again) later
        values[name] = value  # None too: one statement shape, compiled once
    session.connection().execute(statement, values)
    make_transient_to_detached(obj)
    session.add(obj)


@functools.cache
def _insert_plan(mapper: Any) -> tuple[Any, list[tuple[str, str, Callable[[], Any] | None]]]:
    """The INSERT of a mapper's table, and per column: its name, attribute and default maker."""
    columns = []
    for column in mapper.local_table.columns:
        default: Callable[[], Any] | None = None
        if column is mapper.version_id_col:
            default = functools.partial(int, 1)
        elif column.default is not None and column.default.is_callable:
            default = functools.partial(column.default.arg, None)
        elif column.default is not None:
            default = functools.partial(lambda value: value, column.default.arg)
        columns.append((column.name, mapper.get_property_by_column(column).key, default))
    return insert(mapper.local_table), columns


def rowcount(result: Any) -> int:
    """Rows an INSERT, UPDATE or DELETE wrote (an INSERT's skipped conflicts not counted)."""
    return int(getattr(result, "rowcount", 0) or 0)


# A connection the server ended (admin or crash shutdown, as a restart does) or would not accept yet.
_CONNECTION_GONE = frozenset({"57P01", "57P02", "57P03"})


def _gone(sqlstate: str | None) -> bool:
    return sqlstate is not None and (sqlstate.startswith("08") or sqlstate in _CONNECTION_GONE)


def is_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is a database connection that broke or could not be made, not a failed statement."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return _gone(sqlstate)
    # libpq's own failures (refused, reset, timed out) carry no SQLSTATE; SQLite's errors are never this.
    return isinstance(exc, OperationalError) and type(exc.orig).__module__.startswith("psycopg")


def is_transient(exc: OperationalError) -> bool:
    """Whether ``exc`` is a lock timeout, deadlock or serialization failure worth retrying."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in {"40001", "40P01"}:
        return True
    return "database is locked" in str(exc.orig).lower()


@contextlib.contextmanager
def unit_of_work() -> Iterator[Session]:
    """The request's session, committed when the block ends and rolled back if it raises."""
    session = get_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
