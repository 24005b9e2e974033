"""A worker registers again when Redis comes back empty, so the "queue has no workers" alert stays true."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest
import redis
from rq import Worker

from shared import queues
from tests.deploy.manifests import ROOT
from tests.support.servers import RedisServer, wait_until


def _registered(client: redis.Redis, queue_name: str) -> set[bytes]:
    """The worker keys registered in ``rq:workers`` that also listen on ``queue_name``."""
    return client.smembers("rq:workers") & client.smembers(f"rq:workers:{queue_name}")


@pytest.mark.slow
def test_a_worker_registers_again_after_redis_restarts_empty(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_database_url: Callable[[str, str], str],
) -> None:
    env = {
        **os.environ,
        "CONSULT_DATABASE_URL": make_database_url("consult", "sqlite"),
        "REDIS_URL": redis_server.url,
        "LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "services.consult", "worker"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    consult = queues.queue(queues.CONSULT_QUEUE, redis_client)
    try:
        wait_until(
            lambda: len(_registered(redis_client, queues.CONSULT_QUEUE)) == 1, timeout=30, what="birth"
        )
        (key,) = _registered(redis_client, queues.CONSULT_QUEUE)
        # Waiting for jobs (idle), where RQ rides out a lost connection. At other moments (its first
        # maintenance round, a job's bookkeeping) RQ quits on one, and its supervisor starts it again.
        wait_until(lambda: redis_client.hget(key, "state") == b"idle", timeout=30, what="idle")

        redis_server.stop()
        redis_server.start()  # the same port and no data: a restart without persistence, or a failover

        # The worker comes back to Redis on its own and, finding its registration gone, makes it again.
        wait_until(lambda: _registered(redis_client, queues.CONSULT_QUEUE) == {key}, timeout=30, what="again")
        assert Worker.count(queue=consult) == 1
        (found,) = Worker.all(queue=consult)
        assert found.pid == worker.pid
        assert redis_client.ttl(key) > 0
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    # It still leaves cleanly: its stop takes it off the registry it joined again.
    assert not _registered(redis_client, queues.CONSULT_QUEUE)
