"""Prometheus metrics of every process: request latency, job outcomes, queue depths, business counts."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import DeferredJobRegistry, FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import event
from sqlalchemy.orm import Session

from shared.queues import queue as make_queue

log = logging.getLogger(__name__)

# A ``_created`` timestamp series beside every counter and histogram doubles the series count for nothing
# Prometheus' rate() needs.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Event lag spans seconds (a quiet relay) to hours (retries after an outage).
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)

REQUEST_DURATION = Histogram(
    "suite_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template (never the path) and status code",
    ["service", "method", "endpoint", "status"],
    buckets=_LATENCY_BUCKETS,
)
JOBS = Counter(
    "suite_jobs",
    "Jobs a worker finished, by queue, handler and outcome (succeeded, retrying, failed)",
    ["queue", "handler", "outcome"],
)
JOB_DURATION = Histogram(
    "suite_job_duration_seconds",
    "Time a worker spent on one job, by queue and handler",
    ["queue", "handler"],
    buckets=_LATENCY_BUCKETS,
)
JOB_WAIT = Histogram(
    "suite_job_wait_seconds",
    "Time a job waited on its queue before a worker took it",
    ["queue"],
    buckets=_LAG_BUCKETS,
)
EVENT_LAG = Histogram(
    "suite_event_lag_seconds",
    "Time from the change an event reports (its occurred_at) to a worker starting to handle it",
    ["queue", "event_type"],
    buckets=_LAG_BUCKETS,
)
OUTBOX_PUBLISHED = Counter(
    "suite_outbox_published_events",
    "Events the relay moved from the booking outbox to the queues, by event type",
    ["event_type"],
)
EVENTS_REDELIVERED = Counter(
    "suite_events_redelivered",
    "Events published again to a consumer that had not acknowledged them in time",
    ["producer", "consumer"],
)
BOOKINGS = Counter(
    "suite_bookings",
    "Committed booking changes: created, rescheduled, cancelled",
    ["change"],
)


# ----------------------------------------------------------------------------------------------------
# Counting what a transaction did, once it commits


_PENDING_KEY = "suite_metrics_after_commit"


def count_after_commit(session: Session, counter: Counter, **labels: str) -> None:
    """Increment ``counter`` with ``labels`` when ``session``'s transaction commits (not if it rolls back)."""
    session.info.setdefault(_PENDING_KEY, []).append((counter, labels))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for counter, labels in session.info.pop(_PENDING_KEY, ()):
        counter.labels(**labels).inc()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


# ----------------------------------------------------------------------------------------------------
# Figures read at scrape time


class ScrapeCollector:
    """A collector that reads its figures when scraped and reports whether it could.

    A collector that cannot reach Redis or the database yields ``suite_scrape_ok{collector=...} 0`` instead of
    failing the whole page: the request metrics of the same process still matter then.
    """

    name = "collector"

    def read(self) -> Iterable[Metric]:
        """The metric families (subclasses override)."""
        raise NotImplementedError

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            "suite_scrape_ok", "Whether a scrape-time collector could read its source", labels=["collector"]
        )
        try:
            families = list(self.read())
        except Exception as exc:  # noqa: BLE001 - any failure of the source means "could not read"
            log.warning(
                "metrics collector failed", extra={"collector": self.name, "error": type(exc).__name__}
            )
            ok.add_metric([self.name], 0)
            yield ok
            return
        yield from families
        ok.add_metric([self.name], 1)
        yield ok


def age_seconds(when: datetime | None, now: datetime) -> float:
    """Seconds from ``when`` to ``now`` (0 for none or the future; a naive ``when`` is taken as UTC)."""
    if when is None:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now - when).total_seconds())


class QueueCollector(ScrapeCollector):
    """Depth of each queue by state, the age of its oldest waiting job, and how many workers listen on it."""

    name = "queues"

    def __init__(self, connection: Redis | Callable[[], Redis], queues: Sequence[str]) -> None:
        self._connection = connection
        self.queues = tuple(queues)

    def _redis(self) -> Redis:
        return self._connection() if callable(self._connection) else self._connection

    def read(self) -> Iterable[Metric]:
        connection = self._redis()
        jobs = GaugeMetricFamily(
            "suite_queue_jobs",
            "Jobs of a queue by state: queued (waiting), dequeued (taken by a worker, not started yet; "
            "one left there by a worker that died is failed, and retried, by a later maintenance round), "
            "started, scheduled (a retry or a delay), deferred, failed",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "suite_queue_oldest_job_age_seconds",
            "How long the oldest job still waiting on the queue has waited (0 when none waits)",
            labels=["queue"],
        )
        workers = GaugeMetricFamily(
            "suite_queue_workers",
            "Workers registered on the queue (alive within their heartbeat)",
            labels=["queue"],
        )
        now = datetime.now(UTC)
        for name in self.queues:
            q: Queue = make_queue(name, connection)
            counts = {
                "queued": q.count,
                "dequeued": connection.llen(q.intermediate_queue_key),
                "started": StartedJobRegistry(queue=q).count,
                "scheduled": ScheduledJobRegistry(queue=q).count,
                "deferred": DeferredJobRegistry(queue=q).count,
                "failed": FailedJobRegistry(queue=q).count,
            }
            for state, count in counts.items():
                jobs.add_metric([name, state], count)
            oldest.add_metric([name], _oldest_wait(q, now))
            workers.add_metric([name], Worker.count(connection=connection, queue=q))
        return [jobs, oldest, workers]


def _oldest_wait(q: Queue, now: datetime) -> float:
    """Age of the job at the head of ``q`` (RQ pops from the left, so the head is the oldest)."""
    # A job deleted while queued leaves its id behind; look a few places further.
    for job_id in q.get_job_ids(offset=0, length=5):
        try:
            job = Job.fetch(job_id, connection=q.connection, serializer=q.serializer)
        except NoSuchJobError:
            continue
        if job.enqueued_at is not None:
            return age_seconds(job.enqueued_at, now)
    return 0.0


class FunctionCollector(ScrapeCollector):
    """Gauges a function computes at scrape time, as ``{(name, help): [(labels, value), ...]}``."""

    def __init__(
        self,
        name: str,
        read: Callable[[], dict[tuple[str, str], list[tuple[dict[str, str], float]]]],
    ) -> None:
        self.name = name
        self._read = read

    def read(self) -> Iterable[Metric]:
        families = []
        for (metric, help_text), samples in self._read().items():
            label_names = sorted({key for labels, _ in samples for key in labels})
            family = GaugeMetricFamily(metric, help_text, labels=label_names)
            for labels, value in samples:
                family.add_metric([labels.get(k, "") for k in label_names], value)
            families.append(family)
        return families


# ----------------------------------------------------------------------------------------------------
# Exposition


class _ProcessMetrics:
    """This process's own metrics (the default registry: counters, histograms, process and GC figures)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def build_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry of this process's metrics (every gunicorn worker's, in multiprocess mode) and ``extra``."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    for collector in extra:
        registry.register(collector)
    return registry


def render(extra: Iterable[Collector] = (), accept: str = "") -> tuple[bytes, str]:
    """The metrics page (body and content type) in the format the scraper's Accept header asks for."""
    encoder, content_type = choose_encoder(accept)
    return encoder(build_registry(extra)), content_type


class _Composite:
    """Collects, at every scrape, whatever ``collectors()`` returns then."""

    def __init__(self, collectors: Callable[[], Iterable[Collector]]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        yield from build_registry(self._collectors()).collect()


def serve_metrics(
    *, port: int, host: str = "127.0.0.1", extra: Callable[[], Iterable[Collector]] = tuple
) -> tuple[Any, Any] | None:
    """Serve ``/metrics`` from a daemon thread on ``host:port`` (a worker, relay or scheduler); 0 = off."""
    if not port:
        return None
    server, thread = start_http_server(port, addr=host, registry=_Composite(extra))
    log.info("metrics served", extra={"port": port})
    return server, thread


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(*, service: str, method: str, endpoint: str, status: int, seconds: float) -> None:
    """Record one answered HTTP request (a made-up method counts as ``other``: labels stay bounded)."""
    method = method if method in _METHODS else "other"
    REQUEST_DURATION.labels(service, method, endpoint, str(status)).observe(seconds)


def since(started: float) -> float:
    """Seconds since ``time.perf_counter()`` read ``started``."""
    return time.perf_counter() - started
