"""The scheduler: sends due check-ins and alerts, expires old ones, redelivers unacknowledged events, and
forgets handled events past the inbox's retention."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from services.checkins.models import CheckinDelivery, ProcessedEvent
from services.checkins.publishing import Publisher, current_payloads, make_due, publish_pending
from shared import delivery, inbox
from shared.loop import run_loop
from shared.retention import PRUNE_BATCH, Every, log_pruned, prune_tables
from shared.timeutil import utcnow


def schedule_once(p: Publisher) -> dict[str, int]:
    """One scheduler round: make due, publish, take acknowledgements and redeliver."""
    with p.db.transaction() as session:
        counts = make_due(session, now=utcnow(), reminder_hours=p.config.reminder_hours)
    counts["published"] = publish_pending(p)
    report = delivery.reconcile_once(
        db=p.db,
        connection=p.redis,
        model=CheckinDelivery,
        producer="checkin",
        grace=p.config.event_redeliver_seconds,
        bound=p.config.event_delivery_bound_seconds,
        payloads=current_payloads(p),
    )
    counts["redelivered"] = report.redelivered
    return counts


def prune(p: Publisher, *, now: datetime | None = None) -> dict[str, int]:
    """Forget, in bounded batches, the events checkins handled over its inbox retention ago, and the settled
    deliveries of its own events first sent as long ago (when consumers forget those ids too); how many."""
    keep = timedelta(days=p.config.inbox_retention_days)

    def handled(session: Session, now: datetime) -> int:
        return inbox.prune(session, ProcessedEvent, before=now - keep, limit=PRUNE_BATCH)

    def delivered(session: Session, now: datetime) -> int:
        before = now - keep
        return delivery.prune(session, CheckinDelivery, before=before, settled_only=True, limit=PRUNE_BATCH)

    batches = {"processed_events": handled, "event_deliveries": delivered}
    return prune_tables(p.db, batches, limit=PRUNE_BATCH, now=now)


def run_scheduler(p: Publisher, *, interval: float, stop: threading.Event | None = None) -> None:
    """Run a round every ``interval`` seconds (and prune every few minutes) until ``stop`` is set (or
    SIGTERM/SIGINT arrives)."""
    pruning = Every()

    def step() -> float:
        schedule_once(p)
        if pruning.due():
            log_pruned("checkins", prune(p))
        return interval

    run_loop("checkins scheduler", step, max_backoff=60.0, stop=stop)
