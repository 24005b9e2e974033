"""Idempotent consumers: remember which events were handled, in the same transaction as their effects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, delete, select
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from shared import killpoints
from shared.db import GUID, UTCDateTime, dialect_insert, rowcount
from shared.timeutil import utcnow


class ProcessedEventMixin:
    """Columns of a consumer's ``processed_events`` table (mix into the service's own model)."""

    event_id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # The prune's question (``prune`` below): which rows were handled before a cutoff?
        return (Index(f"ix_{cls.__tablename__}_processed_at", "processed_at"),)  # type: ignore[attr-defined]


def first_delivery(
    session: Session, model: type[ProcessedEventMixin], *, event_id: uuid.UUID, event_type: str
) -> bool:
    """Record ``event_id`` as handled in this transaction; False if it already was (a redelivery)."""
    # One statement: a concurrent delivery of the same event waits on the key, then inserts nothing.
    recorded = session.execute(
        dialect_insert(session, model)
        .values(event_id=event_id, event_type=event_type, processed_at=utcnow())
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(model.event_id)
    ).first()
    if recorded is None:
        return False
    killpoints.reached("handler.recorded")
    return True


def prune(session: Session, model: type[ProcessedEventMixin], *, before: datetime, limit: int) -> int:
    """Forget up to ``limit`` events handled before ``before`` (none may arrive again by then); how many.

    Rows another transaction holds are skipped (``SKIP LOCKED``); each service runs this from its periodic
    loop through shared/retention.py, with a cutoff its producers can no longer re-send an event from.
    """
    ids = list(
        session.scalars(
            select(model.event_id)
            .where(model.processed_at < before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return 0
    return rowcount(session.execute(delete(model).where(model.event_id.in_(ids))))
