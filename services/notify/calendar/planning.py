"""The plan rows and bookkeeping of the provider's calendar (invites and feed), made while applying events.

``services.notify.planning`` calls these in the event handlers' transactions; ``calendar.invites`` claims the
rows and ``calendar.service`` serves what they changed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notify.models import (
    CANCELLED,
    COURSE_INVITE,
    EMAIL,
    INVITE_LINK,
    PLANNED,
    SKIPPED,
    BookingCopy,
    CourseNotice,
    ProviderFeed,
    insert_messages,
)
from services.notify.protocols import Protocol, ProtocolBook
from shared import events
from shared.db import dialect_insert
from shared.events import VIDEO
from shared.links import new_secret

COVERED_BY_COURSE_INVITE = "covered by the course's one invite email to the provider"


def bump_feeds(session: Session, provider_ids: set[int], now: datetime) -> None:
    """Raise the feed revision of each provider (in the caller's transaction): what their feed shows changed.

    Called by every write that changes a feed (booking events, join links, invites' sequences), so a feed's
    ETag is one primary-key read. Providers are taken in id order, the feed rows last of all locks.
    """
    for provider_id in sorted(provider_ids):
        session.execute(
            dialect_insert(session, ProviderFeed)
            .values(
                provider_id=provider_id,
                token_version=1,
                token_secret=new_secret(),
                revision=1,
                changed_at=now,
                created_at=now,
            )
            .on_conflict_do_update(
                index_elements=["provider_id"],
                set_={"revision": ProviderFeed.revision + 1, "changed_at": now},
            )
        )


def invite_row(
    *, copy: BookingCopy, protocol: Protocol, step: str, due_at: datetime, now: datetime
) -> dict[str, Any]:
    """The plan row of a provider invite for ``copy``'s current version (skipped if the visit is over)."""
    late = now >= copy.end_at
    return {
        "booking_id": copy.id,
        "booking_version": copy.version,
        "step": step,
        "channel": EMAIL,
        "protocol": protocol.slug,
        "protocol_version": protocol.version,
        "urgent": True,
        "due_at": due_at,
        # An invite is of no use once the visit is over.
        "expires_at": copy.end_at,
        "status": SKIPPED if late else PLANNED,
        "reason": "too late: the visit is over" if late else "",
        "blocked_on": None,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def plan_link_invite(
    *,
    session: Session,
    book: ProtocolBook,
    copy: BookingCopy | None,
    event: events.LinksReadyEvent,
    now: datetime,
) -> bool:
    """Plan the provider's updated invite for newly arrived join links, if the booking wants one."""
    if (
        copy is None  # the booking event is still on its way: its invite will carry the links
        or copy.version != event.booking_version
        or copy.status == CANCELLED
        or copy.snapshot["appointment_type"]["mode"] != VIDEO
        or now >= copy.end_at
    ):
        return False
    row = invite_row(copy=copy, protocol=book.get(copy.protocol), step=INVITE_LINK, due_at=now, now=now)
    insert_messages(session, [row])
    return True


def plan_course_invites(
    *, session: Session, book: ProtocolBook, notice: CourseNotice, now: datetime
) -> list[uuid.UUID]:
    """Plan one invite email per provider of a whole-course change (its sessions' own invites are skipped);
    the sessions they hang on: each provider's first listed session, at the version the change left it.

    Called once, when the notice's message rows are planned (``course_messages.plan_if_ready``).
    """
    listed = notice.sessions or []
    ids = [uuid.UUID(s["booking_id"]) for s in listed]
    copies = {str(c.id): c for c in session.scalars(select(BookingCopy).where(BookingCopy.id.in_(ids)))}
    groups: dict[int, list[dict[str, Any]]] = {}
    for entry in listed:
        groups.setdefault(copies[entry["booking_id"]].provider_id, []).append(entry)
    rows = []
    for provider_id in sorted(groups):
        first, *_ = groups[provider_id]
        anchor = copies[first["booking_id"]]
        row = invite_row(
            copy=anchor,
            protocol=book.get(anchor.protocol),
            step=COURSE_INVITE,
            due_at=notice.occurred_at or now,
            now=now,
        )
        ends = max(copies[e["booking_id"]].end_at for e in groups[provider_id])
        late = now >= ends
        row.update(
            booking_version=first["version"],
            expires_at=ends,
            status=SKIPPED if late else PLANNED,
            reason="too late: every session is over" if late else "",
        )
        rows.append(row)
    insert_messages(session, rows)
    return [r["booking_id"] for r in rows]
