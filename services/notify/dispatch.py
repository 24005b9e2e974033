"""The dispatcher: hands what is due from the database to Redis, and repairs what Redis or a worker lost."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from services.notify.calendar import invites
from services.notify.metrics import DISPATCHED
from services.notify.models import FAILED, PLANNED, QUEUED, SENDING, Message, ProcessedEvent, ReplyDelivery
from services.notify.replies import publishing as replies
from services.notify.replies import ratings
from services.notify.runtime import SEND_QUEUE, URGENT_QUEUE, Runtime
from shared import delivery, inbox, killpoints, retention
from shared.db import rowcount
from shared.loop import run_loop
from shared.queues import NOTIFY_QUEUE, queue
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

SEND_JOB = "services.notify.jobs.send_messages"
RECONCILE_JOB = "services.notify.jobs.reconcile_messages"
SEND_JOB_PREFIX = "notify-send-"  # the ids of send jobs (their messages record it as job_id)
SEND_RESULT_TTL = 3600
SEND_FAILURE_TTL = 7 * 24 * 3600
_GONE = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
PASS_LIMIT = 5000
PRUNE_BATCH = retention.PRUNE_BATCH  # rows one prune transaction deletes at most
_MESSAGES = cast(Table, Message.__table__)


@dataclass
class PassReport:
    """What one dispatcher pass did."""

    requeued: int = 0
    expired: int = 0
    enqueued: int = 0
    jobs: int = 0
    reconciling: int = 0
    job_ids: list[str] = field(default_factory=list)


def _chunks(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# One send job: (queue, job id, message ids).
Batch = tuple[str, str, list[int]]


def queue_for(*, step: str, urgent: bool) -> str:
    """The patient's urgent messages (confirmations, join links) go first; invites and the rest after."""
    return URGENT_QUEUE if urgent and not invites.is_invite(step) else SEND_QUEUE


def due_rows(session: Session, *conditions: Any, limit: int | None = None, lock: bool = False) -> list[Any]:
    """(id, step, urgent) of the planned, unblocked messages matching ``conditions``, earliest due first."""
    query = (
        select(Message.id, Message.step, Message.urgent)
        .where(Message.status == PLANNED, Message.blocked_on.is_(None), *conditions)
        .order_by(Message.due_at, Message.id)
        .limit(limit)
    )
    return list(session.execute(query.with_for_update(skip_locked=True) if lock else query).all())


def mark_queued(*, session: Session, runtime: Runtime, rows: list[Any], now: datetime) -> list[Batch]:
    """Mark ``rows`` (id, step, urgent) queued in batches per queue (in the caller's transaction)."""
    by_queue: dict[str, list[int]] = {}
    for row in rows:
        by_queue.setdefault(queue_for(step=row.step, urgent=row.urgent), []).append(row.id)
    batches: list[Batch] = []
    if by_queue:
        session.flush()  # the Core updates below must not be overwritten by a pending ORM change
    for queue_name in (URGENT_QUEUE, SEND_QUEUE):
        for chunk in _chunks(by_queue.get(queue_name, []), runtime.config.send_batch_size):
            job_id = f"{SEND_JOB_PREFIX}{uuid.uuid4().hex}"
            # Core, not the ORM's bulk update: nothing loaded in the session is read again after it.
            session.execute(
                update(_MESSAGES)
                .where(_MESSAGES.c.id.in_(chunk))
                .values(status=QUEUED, queued_at=now, job_id=job_id, updated_at=now)
            )
            batches.append((queue_name, job_id, chunk))
    return batches


def push_jobs(runtime: Runtime, batches: list[Batch]) -> None:
    """Put the send jobs of ``batches`` on their queues in one round trip."""
    if not batches:
        return
    pipe = runtime.redis.pipeline(transaction=False)
    for queue_name, job_id, chunk in batches:
        queue(queue_name, runtime.redis).enqueue_call(
            SEND_JOB,
            args=(chunk,),
            job_id=job_id,
            timeout=runtime.config.send_job_timeout,
            result_ttl=SEND_RESULT_TTL,
            failure_ttl=SEND_FAILURE_TTL,
            description=f"send {len(chunk)} messages",
            pipeline=pipe,
        )
    pipe.execute()


def requeue_lost(*, session: Session, runtime: Runtime, now: datetime) -> int:
    """Put back to planned the queued messages whose job Redis no longer has."""
    cutoff = now - timedelta(seconds=runtime.config.queued_stale_seconds)
    rows = session.execute(
        select(Message.id, Message.job_id)
        .where(Message.status == QUEUED, Message.queued_at < cutoff)
        .limit(PASS_LIMIT)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return 0
    job_ids = sorted({r.job_id for r in rows if r.job_id})
    jobs = Job.fetch_many(job_ids, connection=runtime.redis, serializer=JSONSerializer)
    alive = {job.id for job in jobs if job is not None and _alive(runtime, job)}
    lost = [r.id for r in rows if r.job_id not in alive]
    if lost:
        session.execute(
            update(Message).where(Message.id.in_(lost)).values(status=PLANNED, job_id=None, updated_at=now)
        )
        log.warning("queued messages lost their jobs; planned again", extra={"count": len(lost)})
    return len(lost)


def _alive(runtime: Runtime, job: Job) -> bool:
    """Whether ``job`` will still run: started, or waiting in its queue (not merely marked queued)."""
    status = job.get_status(refresh=False)
    if status in _GONE:
        return False
    if status == JobStatus.QUEUED:
        # A worker killed between taking a job and starting it can leave it "queued" in no queue at all.
        return runtime.redis.lpos(f"rq:queue:{job.origin}", job.id) is not None
    return True


def expire_waiting(*, session: Session, now: datetime) -> int:
    """Fail the messages that waited for a join link that never came before the visit ended."""
    result = session.execute(
        update(Message)
        .where(Message.status == PLANNED, Message.blocked_on.is_not(None), Message.expires_at < now)
        .values(status=FAILED, reason="the join link never arrived", blocked_on=None, updated_at=now)
    )
    count = rowcount(result)
    if count:
        log.error("messages failed waiting for a join link", extra={"count": count})
    return count


def enqueue_due(
    *, session: Session, runtime: Runtime, now: datetime, limit: int = PASS_LIMIT
) -> tuple[int, list[str]]:
    """Queue up to ``limit`` due planned messages, earliest first."""
    rows = due_rows(session, Message.due_at <= now, limit=limit, lock=True)
    batches = mark_queued(session=session, runtime=runtime, rows=rows, now=now)
    # Pushed before the commit: if Redis is down the rows stay planned; if the commit then fails, the job
    # still finds its rows due and planned (its claim waits for this transaction's row locks).
    push_jobs(runtime, batches)
    if batches:
        killpoints.reached("dispatch.pushed")
    return len(rows), [job_id for _, job_id, _ in batches]


def reconcile_stale(*, session: Session, runtime: Runtime, now: datetime) -> int:
    """Give sends stuck in ``sending`` (longer than any send job may run) to a reconcile job."""
    cutoff = now - timedelta(seconds=runtime.config.sending_stale_seconds)
    ids = list(
        session.scalars(
            select(Message.id)
            .where(
                Message.status == SENDING,
                Message.sending_started_at < cutoff,
                (Message.queued_at.is_(None)) | (Message.queued_at < cutoff),
            )
            .limit(PASS_LIMIT)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return 0
    q = queue(NOTIFY_QUEUE, runtime.redis)
    pipe = runtime.redis.pipeline(transaction=False)
    for chunk in _chunks(ids, runtime.config.send_batch_size):
        session.execute(update(Message).where(Message.id.in_(chunk)).values(queued_at=now))
        q.enqueue_call(
            RECONCILE_JOB,
            args=(chunk,),
            timeout=runtime.config.send_job_timeout,
            result_ttl=SEND_RESULT_TTL,
            failure_ttl=SEND_FAILURE_TTL,
            description=f"reconcile {len(chunk)} interrupted sends",
            pipeline=pipe,
        )
    pipe.execute()
    log.warning("interrupted sends handed to reconciliation", extra={"count": len(ids)})
    return len(ids)


def dispatch_once(runtime: Runtime, *, now: datetime | None = None) -> PassReport:
    """One dispatcher pass (see the module docstring)."""
    now = now or utcnow()
    report = PassReport()
    with runtime.db.transaction() as session:
        report.requeued = requeue_lost(session=session, runtime=runtime, now=now)
        report.expired = expire_waiting(session=session, now=now)
    while True:
        with runtime.db.transaction() as session:
            count, job_ids = enqueue_due(session=session, runtime=runtime, now=now)
        report.enqueued += count
        report.job_ids += job_ids
        if count < PASS_LIMIT:
            break
    report.jobs = len(report.job_ids)
    with runtime.db.transaction() as session:
        report.reconciling = reconcile_stale(session=session, runtime=runtime, now=now)
    for action in ("enqueued", "requeued", "reconciling", "expired"):
        if getattr(report, action):
            DISPATCHED.labels(action).inc(getattr(report, action))
    return report


def dispatch_now(runtime: Runtime, batches: list[Batch]) -> None:
    """Push one event's just-committed due messages at once; if Redis fails, plan them again."""
    try:
        push_jobs(runtime, batches)
    except RedisError:
        ids = [i for _, _, chunk in batches for i in chunk]
        with runtime.db.transaction() as session:
            session.execute(
                update(Message)
                .where(Message.id.in_(ids), Message.status == QUEUED)
                .values(status=PLANNED, job_id=None)
            )
        log.warning("redis unreachable; the dispatcher will send these", extra={"count": len(ids)})


def _prunes(runtime: Runtime) -> dict[str, Callable[[Session, datetime], int]]:
    """Per table, one bounded batch of what notify no longer needs (each says why it may go)."""
    replies_kept = timedelta(days=runtime.config.reply_retention_days)
    inbox_kept = timedelta(days=runtime.config.inbox_retention_days)
    return {
        "rating_asks": lambda session, now: ratings.prune(session, now=now, limit=PRUNE_BATCH),
        "sms_replies": lambda session, now: replies.prune(
            session, now=now, keep=replies_kept, limit=PRUNE_BATCH
        ),
        "event_deliveries": lambda session, now: delivery.prune(
            session, ReplyDelivery, before=now - replies_kept, settled_only=True, limit=PRUNE_BATCH
        ),
        "processed_events": lambda session, now: inbox.prune(
            session, ProcessedEvent, before=now - inbox_kept, limit=PRUNE_BATCH
        ),
    }


def prune(runtime: Runtime, *, now: datetime | None = None) -> dict[str, int]:
    """Delete what notify no longer needs, table by table, in bounded batches; rows gone per table."""
    return retention.prune_tables(runtime.db, _prunes(runtime), limit=PRUNE_BATCH, now=now)


def run_dispatcher(runtime: Runtime, *, interval: float, stop: threading.Event | None = None) -> None:
    """Dispatch every ``interval`` seconds until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    pruning = retention.Every()

    def step() -> float:
        report = dispatch_once(runtime)
        replies.relay_once(runtime)  # SMS reply events to the booking service (services/notify/replies)
        if pruning.due():
            retention.log_pruned("notify", prune(runtime))
        if report.enqueued or report.requeued or report.reconciling or report.expired:
            log.info(
                "dispatched %d messages in %d jobs",
                report.enqueued,
                report.jobs,
                extra={
                    "requeued": report.requeued,
                    "reconciling": report.reconciling,
                    "expired": report.expired,
                },
            )
        return interval

    run_loop("notify dispatcher", step, max_backoff=30.0, stop=stop)
