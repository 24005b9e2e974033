"""Queue handlers of the notify service. Each takes plain JSON data and is idempotent."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.notify import (
    checkin_messages,
    course_messages,
    dispatch,
    escorts,
    link_messages,
    planning,
    sending,
)
from services.notify.calendar.planning import plan_course_invites
from services.notify.models import CourseNotice, ProcessedEvent
from services.notify.replies import ratings
from services.notify.runtime import URGENT_QUEUE, Runtime, get_runtime
from shared import killpoints
from shared.events import (
    BOOKING_ESCORT_CHANGED,
    BookingEvent,
    load_checkin_alert,
    load_checkin_closed,
    load_checkin_requested,
    load_course_event,
    load_event,
    load_link_requested,
    load_links_ready,
)
from shared.inbox import first_delivery
from shared.logging import correlation
from shared.queues import EVENT_JOB_TIMEOUT
from shared.timeutil import utcnow

log = logging.getLogger(__name__)


def handle_booking_event(payload: dict[str, Any]) -> str:
    """Update notify's copy of the booking, re-plan its messages, and queue what is due at once."""
    event = load_event(payload)
    runtime = get_runtime()
    if event.type == BOOKING_ESCORT_CHANGED:
        return _escort_changed(runtime, event)
    with correlation(event.correlation_id):
        with runtime.db.transaction() as session:
            if not first_delivery(session, ProcessedEvent, event_id=event.event_id, event_type=event.type):
                log.info("event already handled", extra={"event_id": str(event.event_id)})
                return "duplicate"
            now = utcnow()
            # A course notice is locked before the booking copy: the one lock order (course_messages.py).
            notice = course_messages.hold(session, event.course_change, now) if event.course_change else None
            applied = planning.apply_booking_event(
                session=session,
                book=runtime.book,
                event=event,
                quiet=runtime.config.quiet_hours,
                now=now,
                invites=runtime.config.provider_invites,
            )
            anchor = None
            if notice is not None:
                anchor = course_messages.plan_if_ready(
                    session=session,
                    book=runtime.book,
                    notice=notice,
                    quiet=runtime.config.quiet_hours,
                    now=now,
                )
            if applied.stale and anchor is None:
                return "stale"
            if not applied.stale:
                assert applied.copy is not None
                escorts.apply_booking_event(
                    session=session,
                    book=runtime.book,
                    event=event,
                    quiet=runtime.config.quiet_hours,
                    now=now,
                    copy=applied.copy,
                )
            touched = set() if applied.stale else {event.booking.id}
            if anchor is not None:
                touched |= _course_planned(session, event.course_change, anchor, now)
            due = {booking_id: planning.due_now(session, booking_id, now) for booking_id in sorted(touched)}
            rows = [row for booking_rows in due.values() for row in booking_rows]
            claim = _claim_inline(session, runtime, rows, applied, own=due.get(event.booking.id, []), now=now)
            claimed, prepared = claim or ((), [])
            queued = [row for row in rows if row.id not in claimed]
            batches = dispatch.mark_queued(session=session, runtime=runtime, rows=queued, now=now)
        if claim is None:
            # What is due goes at once (the confirmation sent here) once its rows are committed and visible.
            _send_now(runtime, batches)
            return "handled"
        dispatch.dispatch_now(runtime, batches)
        sending.send_claimed(runtime, prepared)  # committed sending: a death from here on is reconciled
        return "handled"


def _claim_inline(
    session: Session,
    runtime: Runtime,
    rows: list[Any],
    applied: planning.Applied,
    *,
    own: list[Any],
    now: datetime,
) -> tuple[set[int], list[sending.Prepared]] | None:
    """Claim the event's urgent messages (due ``rows``: id, step, urgent) in the event's own transaction,
    where its booking copy is already locked and read: one transaction fewer than queueing then claiming.
    None when they are not all the event booking's own and one round of calls, or the claim failed (its
    savepoint rolled back; the planning stands): then they are queued and sent as before (``_send_now``).
    Else the ids claimed (each now sending, skipped or planned again) and what is to go."""
    urgent = [r.id for r in rows if dispatch.queue_for(step=r.step, urgent=r.urgent) == URGENT_QUEUE]
    copy = applied.copy
    limit = min(runtime.config.send_concurrency, runtime.config.send_batch_size)
    if copy is None or not urgent or len(urgent) > limit or not _fits_one_round(runtime):
        return None
    if not set(urgent) <= {r.id for r in own}:
        return None
    join = {(copy.id, copy.version): applied.join_link} if applied.join_link is not None else {}
    held = sending.Held(bookings={copy.id: copy}, join_links=join)
    try:
        with session.begin_nested():
            prepared = sending.claim(session=session, runtime=runtime, ids=urgent, now=now, held=held)
    except Exception as exc:  # noqa: BLE001 (the old path claims them again, in its own transaction or a job)
        # The type only: a database error quotes its parameters (the patient's number among them).
        log.error(
            "claiming at once failed; queued instead",
            extra={"count": len(urgent), "error": type(exc).__name__},
        )
        return None
    return set(urgent), prepared


def _fits_one_round(runtime: Runtime) -> bool:
    """Whether one round of provider calls fits well inside an event job's timeout (RQ would stop it
    mid-send, left to reconcile)."""
    return 2 * runtime.config.call_budget_seconds <= EVENT_JOB_TIMEOUT


def _inline_batch(runtime: Runtime, batches: list[dispatch.Batch]) -> dispatch.Batch | None:
    """The urgent batch an event job sends itself when it takes one round of provider calls (a
    confirmation: one job fewer to enqueue and take)."""
    fits = _fits_one_round(runtime)
    return next(
        (
            b
            for b in batches
            if fits and b[0] == URGENT_QUEUE and len(b[2]) <= runtime.config.send_concurrency
        ),
        None,
    )


def _send_now(runtime: Runtime, batches: list[dispatch.Batch]) -> None:
    """Send an event's just-committed (queued, not yet claimed) inline batch in this job; push the rest as
    jobs."""
    inline = _inline_batch(runtime, batches)
    dispatch.dispatch_now(runtime, [b for b in batches if b is not inline])
    if inline is None:
        return
    # Killed from here on, the rows stay queued under a job Redis never had (requeue_lost plans them again
    # after NOTIFY_QUEUED_STALE_SECONDS) or sending (reconciled): the claim keeps it to one send.
    killpoints.reached("send.inline")
    try:
        sending.send_batch(runtime, inline[2])
    except Exception:  # the claim re-checks every row: a job sends whatever is left
        log.exception("sending at once failed; queued as a job", extra={"count": len(inline[2])})
        dispatch.dispatch_now(runtime, [inline])


def _escort_changed(runtime: Runtime, event: BookingEvent) -> str:
    """Apply ``booking.escort_changed`` once: the escort's messages re-planned, what is due queued."""
    return _plan_and_queue(
        event.event_id,
        event.type,
        event.correlation_id,
        event.booking.id,
        lambda session, now: escorts.apply_escort_event(
            session=session, book=runtime.book, event=event, quiet=runtime.config.quiet_hours, now=now
        ),
    )


def handle_course_event(payload: dict[str, Any]) -> str:
    """Record a whole-course change; plan its one message once its sessions' events are here too."""
    event = load_course_event(payload)
    runtime = get_runtime()
    with correlation(event.correlation_id):
        with runtime.db.transaction() as session:
            if not first_delivery(session, ProcessedEvent, event_id=event.event_id, event_type=event.type):
                log.info("event already handled", extra={"event_id": str(event.event_id)})
                return "duplicate"
            now = utcnow()
            anchor = course_messages.apply_course_event(
                session=session, book=runtime.book, event=event, quiet=runtime.config.quiet_hours, now=now
            )
            if anchor is None:
                return "waiting for its sessions"  # the last session's event plans the message
            touched = _course_planned(session, event.event_id, anchor, now)
            due = [
                row for booking_id in sorted(touched) for row in planning.due_now(session, booking_id, now)
            ]
            batches = dispatch.mark_queued(session=session, runtime=runtime, rows=due, now=now)
        dispatch.dispatch_now(runtime, batches)
        return "handled"


def _course_planned(
    session: Session, event_id: uuid.UUID | None, anchor: uuid.UUID, now: datetime
) -> set[uuid.UUID]:
    """A course notice's rows were just planned: plan its invites to the providers too (if invites are on);
    the sessions whose rows may be due now."""
    runtime = get_runtime()
    notice = session.get(CourseNotice, event_id)
    if notice is None or not runtime.config.provider_invites:
        return {anchor}
    return {anchor, *plan_course_invites(session=session, book=runtime.book, notice=notice, now=now)}


def handle_links_ready(payload: dict[str, Any]) -> str:
    """Store a booking version's join links and queue the messages that waited for them."""
    event = load_links_ready(payload)
    runtime = get_runtime()
    with correlation(event.correlation_id):
        with runtime.db.transaction() as session:
            if not first_delivery(session, ProcessedEvent, event_id=event.event_id, event_type=event.type):
                log.info("event already handled", extra={"event_id": str(event.event_id)})
                return "duplicate"
            now = utcnow()
            planning.apply_links_ready(
                session=session,
                event=event,
                now=now,
                book=runtime.book if runtime.config.provider_invites else None,
            )
            due = planning.due_now(session, event.booking_id, now)
            batches = dispatch.mark_queued(session=session, runtime=runtime, rows=due, now=now)
        _send_now(runtime, batches)
        return "handled"


def handle_link_requested(payload: dict[str, Any]) -> str:
    """Plan the SMS and email carrying the booking's current manage link, and send them at once."""
    event = load_link_requested(payload)
    runtime = get_runtime()
    return _plan_and_queue(
        event.event_id,
        event.type,
        event.correlation_id,
        event.booking_id,
        lambda session, now: link_messages.plan(session=session, book=runtime.book, event=event, now=now),
    )


def handle_checkin_requested(payload: dict[str, Any]) -> str:
    """Plan the SMS and email that carry a check-in link to the patient, and queue them."""
    event = load_checkin_requested(payload)
    runtime = get_runtime()
    return _plan_and_queue(
        event.event_id,
        event.type,
        event.correlation_id,
        event.booking_id,
        lambda session, now: checkin_messages.plan_checkin(
            session=session, runtime=runtime, event=event, now=now
        ),
    )


def handle_checkin_alert(payload: dict[str, Any]) -> str:
    """Plan an urgent SMS and email to every on-call contact of a safety alert, and queue them at once."""
    event = load_checkin_alert(payload)
    return _plan_and_queue(
        event.event_id,
        event.type,
        event.correlation_id,
        event.booking_id,
        lambda session, now: checkin_messages.plan_alert(session=session, event=event, now=now),
    )


def handle_checkin_closed(payload: dict[str, Any]) -> str:
    """Close the SMS ask of a rating check-in closed in checkins, so a later number is told the truth."""
    event = load_checkin_closed(payload)
    runtime = get_runtime()
    return _plan_and_queue(
        event.event_id,
        event.type,
        event.correlation_id,
        event.booking_id,
        lambda session, now: ratings.close_ask(
            session, runtime, booking_id=event.booking_id, checkin_id=event.checkin_id, now=now
        ),
    )


def _plan_and_queue(
    event_id: uuid.UUID,
    event_type: str,
    correlation_id: str,
    booking_id: uuid.UUID,
    plan: Callable[[Session, datetime], object],
) -> str:
    """Apply an event that plans messages for one booking, once, and queue those due now."""
    runtime = get_runtime()
    with correlation(correlation_id):
        with runtime.db.transaction() as session:
            if not first_delivery(session, ProcessedEvent, event_id=event_id, event_type=event_type):
                return "duplicate"
            now = utcnow()
            plan(session, now)
            due = planning.due_now(session, booking_id, now)
            batches = dispatch.mark_queued(session=session, runtime=runtime, rows=due, now=now)
        dispatch.dispatch_now(runtime, batches)
        return "handled"


def send_messages(ids: list[int]) -> dict[str, int]:
    """Send the due messages among ``ids`` (a batch from the dispatcher or an event handler)."""
    return sending.send_batch(get_runtime(), [int(i) for i in ids])


def reconcile_messages(ids: list[int]) -> dict[str, int]:
    """Settle interrupted sends among ``ids`` with their provider."""
    return sending.reconcile(get_runtime(), [int(i) for i in ids])
