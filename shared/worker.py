"""RQ workers that run a service's jobs inside its app context; the stop signal of every polling loop."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from redis.client import Pipeline
from rq import SimpleWorker, worker_registration
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer

from shared import delivery, killpoints, metrics
from shared.app import add_metrics_collector, get_redis
from shared.logging import correlation
from shared.queues import CORRELATION_META, SuiteQueue, queue, route_of_job
from shared.timeutil import parse_instant


def job_correlation_id(job: Job) -> str:
    """The correlation id ``job`` was enqueued under, else the one of the event it carries ('' if none)."""
    cid = (job.meta or {}).get(CORRELATION_META)
    if cid:
        return str(cid)
    payload = job.args[0] if job.args else None
    if isinstance(payload, dict):
        return str(payload.get("correlation_id") or "")
    return ""


def _observe_start(job: Job, queue_name: str) -> None:
    now = datetime.now(UTC)
    if job.enqueued_at is not None:
        metrics.JOB_WAIT.labels(queue_name).observe(metrics.age_seconds(job.enqueued_at, now))
    payload = job.args[0] if job.args else None
    if isinstance(payload, dict) and payload.get("occurred_at") and payload.get("type"):
        try:
            occurred = datetime.fromisoformat(str(payload["occurred_at"]))
        except ValueError:
            return
        lag = metrics.age_seconds(occurred, now)
        metrics.EVENT_LAG.labels(queue_name, str(payload["type"])).observe(lag)


class SuiteWorker(SimpleWorker):
    """A SimpleWorker that restores correlation ids, acknowledges events, counts jobs and stays registered."""

    queue_class = SuiteQueue

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat; registers the worker again when Redis lost its registration (restarted empty)."""
        super().heartbeat(timeout, pipeline)
        # RQ writes only last_heartbeat here, so a key without its birth was made anew by this very call.
        if pipeline is None and not self.connection.hexists(self.key, "birth"):
            self._register_again(timeout or self.worker_ttl + 60)

    def _register_again(self, ttl: int) -> None:
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, pipe)
            pipe.expire(self.key, ttl)
            pipe.execute()
        self.log.warning("Worker %s: registered again (Redis had lost its registration)", self.name)

    def execute_job(self, job: Job, queue: Queue) -> None:
        killpoints.reached("worker.dequeued")
        with correlation(job_correlation_id(job) or None):
            super().execute_job(job, queue)

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        killpoints.reached("worker.before_done")
        _acknowledge(self.connection, job)
        super().handle_job_success(job, queue, *args, **kwargs)

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        handler = job.func_name or "?"
        _observe_start(job, queue.name)
        started = time.perf_counter()
        ok = super().perform_job(job, queue, execution)
        metrics.JOB_DURATION.labels(queue.name, handler).observe(metrics.since(started))
        if ok:
            outcome = "succeeded"
        else:
            status = job.get_status(refresh=True)
            outcome = "retrying" if status in {JobStatus.SCHEDULED, JobStatus.QUEUED} else "failed"
        metrics.JOBS.labels(queue.name, handler, outcome).inc()
        return ok


def _acknowledge(connection: Any, job: Job) -> None:
    """Tell an event's producer that this consumer handled it (its effects are committed by now)."""
    payload = job.args[0] if job.args else None
    if not isinstance(payload, dict) or "event_id" not in payload:
        return
    route = route_of_job(job.func_name, payload.get("type"))
    if route is not None:
        delivery.acknowledge(
            connection,
            consumer=route.consumer,
            event_type=str(payload["type"]),
            event_id=str(payload["event_id"]),
        )


def make_worker(queue_names: list[str], *, name: str | None = None) -> SuiteWorker:
    """A worker on ``queue_names`` using the current app's Redis (call inside an app context)."""
    connection = get_redis()
    config = current_app.extensions["suite_config"]
    return SuiteWorker(
        [queue(q, connection) for q in queue_names],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        queue_class=SuiteQueue,
        # A worker killed mid-job (SIGKILL, OOM, a lost node) leaves the job "started"; the next maintenance
        # round after the job's heartbeat lapses retries it. RQ's 10 minutes would leave it that long, and an
        # idle worker only wakes (and looks) every worker_ttl - 15 s, so both follow the setting. A dead
        # worker's registration also lapses within worker_ttl, which keeps suite_queue_workers honest.
        maintenance_interval=config.worker_maintenance_seconds,
        worker_ttl=config.worker_maintenance_seconds + 15,
    )


def serve_process_metrics(app: Flask) -> Any:
    """Serve this (non-web) process's own ``/metrics`` on the configured METRICS_PORT (0 = not served).

    The scrape-time gauges (queue depths, outbox backlog) stay on the service's web ``/metrics``: they are the
    same figure whoever reads them, and the web process keeps reporting them while these processes are down.
    """
    config = app.extensions["suite_config"]
    return metrics.serve_metrics(port=config.metrics_port, host=config.metrics_host)


def register_worker_cli(app: Flask, *, queues: list[str]) -> None:
    """Add ``flask worker`` processing ``queues`` for ``app``; the app's /metrics reports their backlog."""
    add_metrics_collector(app, metrics.QueueCollector(lambda: app.extensions["redis"], queues))

    @app.cli.command("worker")
    @click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
    @click.option("--name", default=None, help="Worker name (default: host and pid).")
    @with_appcontext
    def _worker(burst: bool, name: str | None) -> None:
        """Process this service's queues."""
        serve_process_metrics(current_app)
        worker = make_worker(list(queues), name=name)
        worker.work(burst=burst, with_scheduler=True, logging_level=None)


def _instant(_ctx: click.Context, _param: click.Parameter, value: str) -> datetime:
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def since_option(what: str) -> Any:
    """A required ``--since`` instant (ISO 8601 with an offset) of a replay command."""
    return click.option(
        "--since",
        callback=_instant,
        required=True,
        help=f"Send again {what} published at or after this time (ISO 8601 with an offset).",
    )
