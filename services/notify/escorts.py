"""Escorts (issue 19): the support person's pick-up SMS, the patient's nudge and the clinic's alert.

A row of these steps is keyed ``escort:<escort id>:<step>``: each escort of a booking version has its own, and
a changed escort's pending rows can be cancelled without touching anyone else's (docs/notify.md, Escorts).
While a type that requires an escort has none on file, its ``escort = "missing"`` steps are keyed
``escort:none:<step>``, cancelled when one is given.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from services.notify import planning
from services.notify.models import (
    CANCELLED,
    PENDING,
    SENT,
    SKIPPED,
    SMS,
    BookingCopy,
    Message,
    insert_messages,
)
from services.notify.protocols import CANCELLED as ON_CANCELLED
from services.notify.protocols import (
    CLINIC,
    ESCORT,
    MISSING,
    PATIENT,
    RESCHEDULED,
    START,
    Protocol,
    ProtocolBook,
    Step,
)
from shared import events
from shared.db import rowcount

log = logging.getLogger(__name__)

PREFIX = "escort:"
NONE = "none"  # the escort id part of a missing escort's rows
ESCORT_GIVEN = "an escort was given"
_ESCORT_SCHEMA = events.EscortSchema()


def is_escort_step(step: str) -> bool:
    """Whether a plan row is one of an escort's (its step key carries the escort's id)."""
    return step.startswith(PREFIX)


def step_key(escort_id: str, key: str) -> str:
    """The plan row step of protocol step ``key`` for the escort ``escort_id``."""
    return f"{PREFIX}{uuid.UUID(escort_id).hex[:16]}:{key}"


def split(step: str) -> tuple[str, str]:
    """(escort id prefix, protocol step key) of an escort row's step."""
    _, short, key = step.split(":", 2)
    return short, key


def base_key(step: str) -> str:
    """The protocol step key of any plan row."""
    return split(step)[1] if is_escort_step(step) else step


def _short(escort: dict[str, Any] | None) -> str | None:
    return uuid.UUID(escort["id"]).hex[:16] if escort else None


def needs_escort(copy: BookingCopy) -> bool:
    """Whether the booking's type requires an escort (events from before the field say no)."""
    return bool(copy.snapshot["appointment_type"].get("requires_escort", False))


def dump(escort: events.EscortRef | None) -> dict[str, Any] | None:
    """The escort as notify's booking copy keeps it (contact details included; never logged)."""
    return None if escort is None else dict(_ESCORT_SCHEMA.dump(escort))


def _rows_like(booking_id: uuid.UUID, short: str) -> Any:
    return (Message.booking_id == booking_id, Message.step.like(f"{PREFIX}{short}:%"))


def was_told(session: Session, booking_id: uuid.UUID, escort: dict[str, Any]) -> bool:
    """Whether any SMS of this booking went to this escort (only then is a move or cancel news to them)."""
    short = _short(escort)
    assert short is not None
    return bool(
        session.scalar(
            select(
                exists().where(*_rows_like(booking_id, short), Message.status == SENT, Message.channel == SMS)
            )
        )
    )


def cancel_pending(
    session: Session, booking_id: uuid.UUID, escort: dict[str, Any] | None, reason: str, now: datetime
) -> int:
    """Cancel the escort's pending rows of this booking (all versions); how many."""
    short = _short(escort)
    if short is None:
        return 0
    return rowcount(
        session.execute(
            update(Message)
            .where(*_rows_like(booking_id, short), Message.status.in_(PENDING))
            .values(status=CANCELLED, reason=reason, blocked_on=None, updated_at=now)
        )
    )


def _anchors(event_type: str, told: bool) -> tuple[str, ...]:
    """The escort anchors a booking event plans: a move or cancel for an escort who knew, else a pick-up."""
    if event_type == events.BOOKING_CANCELLED:
        return (ON_CANCELLED,) if told else ()
    if event_type == events.BOOKING_RESCHEDULED and told:
        return (RESCHEDULED, START)
    return (ESCORT, START)


def plan(
    *,
    session: Session,
    copy: BookingCopy,
    protocol: Protocol,
    event_type: str,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The rows a booking event or escort change plans for ``copy``'s escort (none once confirmed), or for
    its absence when its type requires one."""
    escort = copy.snapshot.get("escort")
    if not escort:
        return _plan_missing(copy=copy, protocol=protocol, event_type=event_type, quiet=quiet, now=now)
    if not any(s.about_escort for s in protocol.steps):
        return []
    told = was_told(session, copy.id, escort)
    if escort.get("confirmed_at") is not None and event_type != events.BOOKING_CANCELLED:
        return []
    anchors = _anchors(event_type, told)
    mode = copy.snapshot["appointment_type"]["mode"]
    happened = datetime.fromisoformat(copy.snapshot.get("escort_at") or copy.changed_at.isoformat())
    rows: list[dict[str, Any]] = []
    for step in protocol.steps:
        if (
            not step.about_escort
            or step.escort == MISSING
            or step.on not in anchors
            or mode not in step.modes
        ):
            continue
        rows.append(
            _row(
                copy=copy,
                protocol=protocol,
                step=step,
                escort=escort,
                happened=happened,
                quiet=quiet,
                now=now,
            )
        )
    return rows


def _plan_missing(
    *,
    copy: BookingCopy,
    protocol: Protocol,
    event_type: str,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The patient's nudge and the clinic's alert while a type that requires an escort has none on file."""
    if event_type == events.BOOKING_CANCELLED or copy.status != "confirmed" or not needs_escort(copy):
        return []
    mode = copy.snapshot["appointment_type"]["mode"]
    rows = []
    for step in protocol.steps:
        if step.escort != MISSING or mode not in step.modes:
            continue
        row = planning.plan_row(
            copy=copy,
            protocol=protocol,
            step=step,
            channel=step.channels[0],
            patient=copy.snapshot["patient"],
            link_ready=True,
            quiet=quiet,
            now=now,
            happened_at=copy.changed_at,
        )
        row["step"] = f"{PREFIX}{NONE}:{step.key}"
        rows.append(row)
    return rows


def _replan_missing(
    *, session: Session, copy: BookingCopy, protocol: Protocol, quiet: tuple[time, time] | None, now: datetime
) -> int:
    """Plan the missing escort's rows again after an escort was removed (those cancelled for one reopen)."""
    rows = _plan_missing(
        copy=copy, protocol=protocol, event_type=events.BOOKING_CONFIRMED, quiet=quiet, now=now
    )
    inserted = len(insert_messages(session, rows))
    for row in rows:
        session.execute(
            update(Message)
            .where(
                Message.booking_id == copy.id,
                Message.step == row["step"],
                Message.channel == row["channel"],
                Message.booking_version == copy.version,
                Message.status == CANCELLED,
                Message.reason == ESCORT_GIVEN,
            )
            .values(
                status=row["status"],
                reason=row.get("reason"),
                due_at=row["due_at"],
                expires_at=row["expires_at"],
                updated_at=now,
            )
        )
    return inserted


def _row(
    *,
    copy: BookingCopy,
    protocol: Protocol,
    step: Step,
    escort: dict[str, Any],
    happened: datetime,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> dict[str, Any]:
    patient = copy.snapshot["patient"]
    if step.to == ESCORT:
        # The patient's word that the escort agreed is the consent; quiet hours in the clinic's zone.
        patient = {
            "phone": escort["phone"],
            "sms_consent": bool(escort.get("agreed_at")),
            "time_zone": copy.snapshot["clinic"]["time_zone"],
        }
    row = planning.plan_row(
        copy=copy,
        protocol=protocol,
        step=step,
        channel=step.channels[0],
        patient=patient,
        link_ready=True,
        quiet=quiet,
        now=now,
        happened_at=happened,
    )
    row["step"] = step_key(escort["id"], step.key)
    # The escort's number from the start (a cancel notice looks for what was sent to it); others at the send.
    row["recipient"] = escort["phone"] if step.to == ESCORT else None
    return row


def apply_booking_event(
    *,
    session: Session,
    book: ProtocolBook,
    event: events.BookingEvent,
    quiet: tuple[time, time] | None,
    now: datetime,
    copy: BookingCopy,
) -> int:
    """Plan the escort's rows for a booking event already applied to ``copy`` (locked, in the caller's
    session)."""
    rows = plan(
        session=session,
        copy=copy,
        protocol=book.get(copy.protocol),
        event_type=event.type,
        quiet=quiet,
        now=now,
    )
    return len(insert_messages(session, rows))


def replan(
    *,
    session: Session,
    book: ProtocolBook,
    booking_id: uuid.UUID,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> int:
    """Plan the current escort's missing rows (``flask ... replan``); rows already there stay as they are."""
    copy = planning.lock_booking(session, booking_id)
    if copy is None or copy.status != "confirmed":
        return 0
    protocol = book.get(copy.protocol)
    rows = plan(
        session=session,
        copy=copy,
        protocol=protocol,
        event_type=events.BOOKING_CONFIRMED,
        quiet=quiet,
        now=now,
    )
    return len(insert_messages(session, rows))


def apply_escort_event(
    *,
    session: Session,
    book: ProtocolBook,
    event: events.BookingEvent,
    quiet: tuple[time, time] | None,
    now: datetime,
) -> str:
    """Bring the booking copy's escort up to ``booking.escort_changed`` and re-plan the escort's messages.

    An escort change does not raise the booking's version: a change is newer when its version is the copy's
    and it happened after the escort the copy holds. A change for a version not seen yet waits (retried).
    """
    snap = event.booking
    copy = planning.lock_booking(session, snap.id)
    if copy is None or copy.version < snap.version:
        raise LookupError(f"booking {snap.id} version {snap.version} is not known to notify yet")
    held_at = copy.snapshot.get("escort_at")
    if copy.version > snap.version or (held_at and datetime.fromisoformat(held_at) > event.occurred_at):
        log.info("ignored an escort change older than the booking copy", extra={"booking_id": str(snap.id)})
        return "stale"
    old, new = copy.snapshot.get("escort"), dump(snap.escort)
    copy.snapshot = {**copy.snapshot, "escort": new, "escort_at": event.occurred_at.isoformat()}
    copy.updated_at = now
    cancelled = 0
    if old and (new is None or new["id"] != old["id"]):
        cancelled += cancel_pending(session, snap.id, old, "the escort was changed or removed", now)
    if new and new.get("confirmed_at"):
        cancelled += cancel_pending(session, snap.id, new, "the escort confirmed", now)
    if new and not old:
        cancelled += _cancel_missing(session, snap.id, now)
    planned = 0
    if copy.status == "confirmed" and new is None:
        planned = _replan_missing(
            session=session, copy=copy, protocol=book.get(copy.protocol), quiet=quiet, now=now
        )
    elif copy.status == "confirmed":
        rows = plan(
            session=session,
            copy=copy,
            protocol=book.get(copy.protocol),
            event_type=event.type,
            quiet=quiet,
            now=now,
        )
        planned = len(insert_messages(session, rows))
    log.info(
        "escort change applied",
        extra={
            "booking_id": str(snap.id),
            "version": snap.version,
            "planned": planned,
            "cancelled": cancelled,
        },
    )
    return "handled"


def _cancel_missing(session: Session, booking_id: uuid.UUID, now: datetime) -> int:
    """Cancel the pending nudges and alerts about a missing escort once one is given; how many."""
    return rowcount(
        session.execute(
            update(Message)
            .where(*_rows_like(booking_id, NONE), Message.status.in_(PENDING))
            .values(status=CANCELLED, reason=ESCORT_GIVEN, blocked_on=None, updated_at=now)
        )
    )


def verdict(
    *, row: Message, booking: BookingCopy, step: Step | None, opted_out: set[str], staff_email: str | None
) -> tuple[str, str] | None:
    """(final status, reason) when an escort row must not go now, else None (the version is checked apart)."""
    escort = booking.snapshot.get("escort")
    if step is None:
        return SKIPPED, "the step is no longer in the protocol"
    if split(row.step)[0] == NONE:
        if escort is not None:
            return CANCELLED, ESCORT_GIVEN
        if not needs_escort(booking):
            return SKIPPED, "the visit no longer requires an escort"
    elif _short(escort) != split(row.step)[0]:
        return CANCELLED, "the escort was changed or removed"
    elif (step.asks_reply or step.escort) and escort and escort.get("confirmed_at") is not None:
        return SKIPPED, "the escort has confirmed"
    elif step.to == ESCORT and escort and escort["phone"] in opted_out:
        return SKIPPED, "the number opted out of SMS"
    if step.to == CLINIC and not staff_email:
        return SKIPPED, "no staff address for the clinic (clinics.toml [staff_emails])"
    return None


def recipient(row: Message, booking: BookingCopy, step: Step, staff_email: str | None) -> str | None:
    """Who an escort row goes to: the escort's phone, the clinic's staff address, or None (the patient)."""
    if step.to == ESCORT:
        return str(booking.snapshot["escort"]["phone"])
    if step.to == CLINIC:
        return staff_email
    assert step.to == PATIENT
    return None


def quiet_zone(booking: BookingCopy, step: Step | None) -> str:
    """The zone whose quiet hours an SMS respects: the clinic's for an escort, else the patient's."""
    if step is not None and step.to == ESCORT:
        return str(booking.snapshot["clinic"]["time_zone"])
    return str(booking.snapshot["patient"]["time_zone"])


def cancel_on_confirmation(session: Session, booking_id: uuid.UUID, escort_short: str, now: datetime) -> int:
    """Cancel the escort's pending pick-up asks, nudges and alerts once they said YES; how many."""
    return rowcount(
        session.execute(
            update(Message)
            .where(*_rows_like(booking_id, escort_short), Message.status.in_(PENDING))
            .values(status=CANCELLED, reason="the escort confirmed", blocked_on=None, updated_at=now)
        )
    )
