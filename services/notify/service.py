"""Read operations of the notify staff API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.notify.models import BookingCopy, Message
from shared.problems import NotFound


def booking_messages(*, session: Session, booking_id: uuid.UUID) -> dict[str, Any]:
    """Notify's copy of a booking and all its messages, oldest version first; 404 if notify never saw it."""
    copy = session.get(BookingCopy, booking_id)
    if copy is None:
        raise NotFound(f"Notify has no booking {booking_id}.", slug="booking-unknown")
    messages = session.scalars(
        select(Message)
        .where(Message.booking_id == booking_id)
        .order_by(Message.booking_version, Message.due_at, Message.id)
    ).all()
    return {
        "booking_id": copy.id,
        "version": copy.version,
        "status": copy.status,
        "start": copy.start_at,
        "end": copy.end_at,
        "protocol": copy.protocol,
        "messages": messages,
    }


def list_messages(
    *,
    session: Session,
    status: str | None = None,
    channel: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[Message], int]:
    """Messages matching the filters, most recently changed first; and how many match in all."""
    conditions = []
    if status is not None:
        conditions.append(Message.status == status)
    if channel is not None:
        conditions.append(Message.channel == channel)
    total = session.scalar(select(func.count()).select_from(Message).where(*conditions)) or 0
    rows = session.scalars(
        select(Message)
        .where(*conditions)
        .order_by(Message.updated_at.desc(), Message.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return rows, int(total)
