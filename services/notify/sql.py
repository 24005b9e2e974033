"""SQL helpers the notify modules share: dialect-specific INSERT and row locks."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE touched."""
    return int(getattr(result, "rowcount", 0) or 0)


def dialect_insert(session: Session, model: Any) -> Any:
    """An INSERT for this session's backend, so ``on_conflict_*`` works on SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def for_update(session: Session, query: Any, *, read: bool = False) -> Any:
    """``query`` locking its rows (shared with ``read``) on PostgreSQL."""
    # SQLite has no row locks; its BEGIN IMMEDIATE already serializes writers.
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(read=read)
    return query
