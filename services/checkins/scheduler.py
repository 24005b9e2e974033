"""The scheduler: sends due check-ins and alerts, expires old ones, redelivers unacknowledged events."""

from __future__ import annotations

import threading

from services.checkins.models import CheckinDelivery
from services.checkins.publishing import Publisher, current_payloads, make_due, publish_pending
from shared import delivery
from shared.loop import run_loop
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


def run_scheduler(p: Publisher, *, interval: float, stop: threading.Event | None = None) -> None:
    """Run a round every ``interval`` seconds until ``stop`` is set (or SIGTERM/SIGINT arrives)."""

    def step() -> float:
        schedule_once(p)
        return interval

    run_loop("checkins scheduler", step, max_backoff=60.0, stop=stop)
