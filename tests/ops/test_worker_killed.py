"""A worker killed mid-job (SIGKILL: no chance to clean up) loses nothing: the job is retried by another worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rq import Retry, Worker
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from shared import queues
from tests.deploy.manifests import ROOT
from tests.support.servers import RedisServer, wait_until


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "services.consult", "worker"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_the_job_of_a_killed_worker_runs_again(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_database_url: Callable[[str, str], str],
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    job = queues.queue(queues.CONSULT_QUEUE, redis_client).enqueue_call(
        "tests.ops.handlers.slow_first_time",
        args=({"marks": str(marks)},),
        retry=Retry(max=3, interval=1),
        timeout=120,
        description="test job",
    )
    env = {
        **os.environ,
        "CONSULT_DATABASE_URL": make_database_url("consult", "sqlite"),
        "REDIS_URL": redis_server.url,
        "WORKER_MAINTENANCE_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }
    consult = queues.queue(queues.CONSULT_QUEUE, redis_client)
    first = _worker(env)
    try:
        wait_until(lambda: marks.exists(), timeout=30, what="the first run")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    # A replacement starts (its first maintenance round finds nothing due yet) ...
    second = _worker(env)
    try:
        wait_until(lambda: Worker.count(queue=consult) == 1, timeout=30, what="the second worker")
        time.sleep(2)
        # ... then the killed job's heartbeat lapses (job timeout + 60 s; moved to now rather than waited for),
        # and the worker's next maintenance round, WORKER_MAINTENANCE_SECONDS later, retries it.
        started = StartedJobRegistry(queue=consult)
        assert job.id in started.get_job_ids(cleanup=False)
        for entry in redis_client.zrange(started.key, 0, -1):
            redis_client.zadd(started.key, {entry: time.time() - 1})
        wait_until(
            lambda: (
                Job.fetch(job.id, connection=redis_client, serializer=job.serializer).get_status()
                == JobStatus.FINISHED
            ),
            timeout=30,
            what="the retried job",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert marks.read_text().count("run") == 2
