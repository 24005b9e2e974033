"""Queue state and failed jobs, read from Redis: what ``suite status`` and ``suite jobs`` show and do.

Replaying a failed job is safe because every handler is idempotent by event id: a job that had in fact done
its work before it failed changes nothing the second time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from rq import Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from shared import delivery
from shared.metrics import age_seconds
from shared.queues import ALL_QUEUES, queue


@dataclass(frozen=True)
class QueueState:
    """One queue at a glance."""

    name: str
    queued: int
    started: int
    scheduled: int
    failed: int
    workers: int
    oldest_age_seconds: float


def queue_states(connection: Redis, names: tuple[str, ...] = ALL_QUEUES) -> list[QueueState]:
    """The state of each queue in ``names``."""
    now = datetime.now(UTC)
    states = []
    for name in names:
        q = queue(name, connection)
        oldest = 0.0
        for job_id in q.get_job_ids(0, 5):
            try:
                job = Job.fetch(job_id, connection=connection, serializer=q.serializer)
            except NoSuchJobError:
                continue
            oldest = age_seconds(job.enqueued_at, now)
            break
        states.append(
            QueueState(
                name=name,
                queued=q.count,
                started=StartedJobRegistry(queue=q).count,
                scheduled=ScheduledJobRegistry(queue=q).count,
                failed=FailedJobRegistry(queue=q).count,
                workers=Worker.count(connection=connection, queue=q),
                oldest_age_seconds=oldest,
            )
        )
    return states


@dataclass(frozen=True)
class FailedJob:
    """A job that used up its retries. Only the exception's type is shown: its text may quote data."""

    queue: str
    job_id: str
    handler: str
    description: str
    ended_at: datetime | None
    error: str


def _error_type(exc_string: str | None) -> str:
    last = (exc_string or "").strip().splitlines()[-1:] or [""]
    return last[0].split(":", 1)[0].strip() or "unknown"


def failed_jobs(connection: Redis, names: tuple[str, ...] = ALL_QUEUES) -> list[FailedJob]:
    """Every failed job on ``names``, oldest first within each queue."""
    found = []
    for name in names:
        q = queue(name, connection)
        registry = FailedJobRegistry(queue=q)
        for job_id in registry.get_job_ids():
            try:
                job = Job.fetch(job_id, connection=connection, serializer=q.serializer)
            except NoSuchJobError:
                continue
            result = job.latest_result()
            found.append(
                FailedJob(
                    queue=name,
                    job_id=job.id,
                    handler=job.func_name or "?",
                    description=job.description or "",
                    ended_at=job.ended_at,
                    error=_error_type(result.exc_string if result else None),
                )
            )
    return found


def replay(
    connection: Redis, *, queue_name: str, job_ids: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Put failed jobs of ``queue_name`` back on it (all of them when ``job_ids`` is None).

    Returns the ids requeued and the ids that were not in the failed registry.
    """
    q = queue(queue_name, connection)
    registry = FailedJobRegistry(queue=q)
    wanted = registry.get_job_ids() if job_ids is None else job_ids
    requeued, missing = [], []
    for job_id in wanted:
        try:
            registry.requeue(job_id)
        except (InvalidJobOperation, NoSuchJobError):
            missing.append(job_id)
        else:
            requeued.append(job_id)
    return requeued, missing


@dataclass(frozen=True)
class DeliveryState:
    """Events one consumer has not acknowledged within the bound, as the producer's last pass counted them."""

    producer: str
    consumer: str
    overdue: int
    oldest_age_seconds: float
    counted_seconds_ago: float


def delivery_states(connection: Redis) -> list[DeliveryState]:
    """What the relay and the sweeper last counted in their delivery ledgers (shared/delivery.py)."""
    states = []
    for key, raw in sorted(connection.hgetall(delivery.STATUS_KEY).items()):
        producer, _, consumer = (key.decode() if isinstance(key, bytes) else key).partition(">")
        counted = json.loads(raw)
        states.append(
            DeliveryState(
                producer=producer,
                consumer=consumer,
                overdue=int(counted["overdue"]),
                oldest_age_seconds=float(counted["oldest_age_seconds"]),
                counted_seconds_ago=max(0.0, time.time() - float(counted["at"])),
            )
        )
    return states
