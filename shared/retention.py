"""Retention: the periodic, bounded deletion of rows a service no longer needs (docs/architecture.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from shared.db import Database
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

PRUNE_SECONDS = 600.0  # how often a service's loop prunes (notify's dispatcher, booking's relay, ...)
PRUNE_BATCH = 1000  # rows one prune transaction deletes at most

# One bounded batch of a table: deletes at most the limit it was built with, returns how many went.
Batch = Callable[[Session, datetime], int]


def prune_tables(
    db: Database, batches: Mapping[str, Batch], *, limit: int, now: datetime | None = None
) -> dict[str, int]:
    """Run each table's batch in transactions of its own until one deletes fewer than ``limit`` rows, so no
    transaction holds many row locks; how many rows went from each table."""
    now = now or utcnow()
    pruned = {}
    for table, batch in batches.items():
        pruned[table] = 0
        while True:
            with db.transaction() as session:
                count = batch(session, now)
            pruned[table] += count
            if count < limit:
                break
    return pruned


class Every:
    """When a loop's periodic work is due: at the first call, then ``seconds`` after each time it was."""

    def __init__(self, seconds: float = PRUNE_SECONDS) -> None:
        self.seconds = seconds
        self._next = 0.0

    def due(self) -> bool:
        """True (and the next time set) when the work is due now."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.seconds
        return True


def log_pruned(service: str, pruned: Mapping[str, int]) -> None:
    """Log one line when a prune deleted anything (counts per table, no row contents)."""
    if any(pruned.values()):
        log.info("pruned %d rows %s no longer needs", sum(pruned.values()), service, extra=dict(pruned))
