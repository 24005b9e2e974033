"""SQL helpers the notify modules share: row locks (the dialect-specific INSERT is in shared.db)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def for_update(session: Session, query: Any, *, read: bool = False) -> Any:
    """``query`` locking its rows (shared with ``read``) on PostgreSQL."""
    # SQLite has no row locks; its BEGIN IMMEDIATE already serializes writers.
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(read=read)
    return query
