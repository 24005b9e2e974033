"""Workers count what they do (outcome, wait, event lag) and serve it on METRICS_PORT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests
from prometheus_client import generate_latest
from rq import Retry

from shared import metrics, queues
from tests.ops.conftest import Suite, samples, work
from tests.support.servers import free_port

# The database plays no part here.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def _own_metrics() -> str:
    return generate_latest(metrics.build_registry()).decode()


def _enqueue(
    connection: redis.Redis, handler: str, payload: dict[str, Any], retry: Retry | None = None
) -> None:
    queues.queue(queues.CONSULT_QUEUE, connection).enqueue_call(
        handler, args=(payload,), retry=retry, description="test job", failure_ttl=3600
    )


@sqlite_only
def test_outcomes_are_counted_per_queue_and_handler(suite: Suite) -> None:
    def outcome(handler: str, name: str) -> float:
        return samples(
            _own_metrics(),
            "suite_jobs_total",
            queue="consult",
            handler=f"tests.ops.handlers.{handler}",
            outcome=name,
        )

    before = {(h, o): outcome(h, o) for h in ("succeed", "fail") for o in ("succeeded", "retrying", "failed")}
    _enqueue(suite.redis, "tests.ops.handlers.succeed", {"n": 1})
    _enqueue(suite.redis, "tests.ops.handlers.fail", {"n": 2})
    # One retry, at once: the first failure is "retrying", the second "failed".
    _enqueue(suite.redis, "tests.ops.handlers.fail", {"n": 3}, retry=Retry(max=1))
    work(suite.consult, queues.CONSULT_QUEUE)
    after = {key: outcome(*key) - value for key, value in before.items()}
    assert after == {
        ("succeed", "succeeded"): 1,
        ("succeed", "retrying"): 0,
        ("succeed", "failed"): 0,
        ("fail", "succeeded"): 0,
        ("fail", "retrying"): 1,
        ("fail", "failed"): 2,
    }
    body = _own_metrics()
    assert (
        samples(
            body, "suite_job_duration_seconds_count", queue="consult", handler="tests.ops.handlers.succeed"
        )
        >= 1
    )
    assert samples(body, "suite_job_wait_seconds_count", queue="consult") >= 4


@sqlite_only
def test_event_lag_runs_from_the_change_to_the_worker(suite: Suite) -> None:
    labels = {"queue": "consult", "event_type": "booking.confirmed"}
    before_count = samples(_own_metrics(), "suite_event_lag_seconds_count", **labels)
    before_sum = samples(_own_metrics(), "suite_event_lag_seconds_sum", **labels)
    occurred = datetime.now(UTC) - timedelta(seconds=30)
    _enqueue(
        suite.redis,
        "tests.ops.handlers.succeed",
        {"type": "booking.confirmed", "occurred_at": occurred.isoformat(), "n": 4},
    )
    work(suite.consult, queues.CONSULT_QUEUE)
    body = _own_metrics()
    assert samples(body, "suite_event_lag_seconds_count", **labels) - before_count == 1
    assert 30 <= samples(body, "suite_event_lag_seconds_sum", **labels) - before_sum < 60


@sqlite_only
def test_a_worker_serves_its_metrics_on_its_port(suite: Suite) -> None:
    port = free_port()
    served = metrics.serve_metrics(port=port)
    assert served is not None
    server, thread = served
    try:
        _enqueue(suite.redis, "tests.ops.handlers.succeed", {"n": 5})
        work(suite.consult, queues.CONSULT_QUEUE)
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert answer.status_code == 200
        assert samples(answer.text, "suite_jobs_total", queue="consult", outcome="succeeded") >= 1
        # Process figures come along (memory, CPU), the web-only gauges do not.
        assert "process_resident_memory_bytes" in answer.text
        assert "suite_queue_jobs" not in answer.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_port_zero_serves_nothing() -> None:
    assert metrics.serve_metrics(port=0) is None
