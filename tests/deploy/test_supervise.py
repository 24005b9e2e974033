"""``suite run NAME --supervise`` (what `make run` starts each process with): a process that dies is started
again after a pause, with whatever it left behind; one that keeps dying makes the supervisor give up and exit."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
import redis

from deploy.suitectl.supervise import Deaths, Policy, describe_exit
from shared import queues
from tests.deploy.launch import SUITE
from tests.deploy.manifests import ROOT
from tests.support.servers import RedisServer, free_port, wait_until


def test_the_pause_doubles_up_to_its_bound() -> None:
    policy = Policy()
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 16, 16]


def test_deaths_count_only_within_the_window() -> None:
    deaths = Deaths(Policy(max_restarts=2, window_seconds=60))
    assert [deaths.record(t) for t in (0, 10, 20)] == [1, 2, 3]
    assert deaths.too_many()
    assert deaths.record(75) == 2  # the deaths at 0 and 10 s are over a minute old
    assert not deaths.too_many()


def test_an_exit_is_described_by_status_or_signal() -> None:
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _worker_pids(client: redis.Redis) -> set[int]:
    """The consult workers waiting for jobs (by then RQ handles SIGTERM as a warm shutdown)."""
    keys = client.smembers(f"rq:workers:{queues.CONSULT_QUEUE}")
    return {int(client.hget(key, "pid") or 0) for key in keys if client.hget(key, "state") == b"idle"} - {0}


@pytest.mark.slow
def test_a_killed_worker_is_started_again_with_nothing_left_of_the_old_one(
    redis_server: RedisServer, redis_client: redis.Redis, make_database_url: Callable[[str, str], str]
) -> None:
    env = {
        **os.environ,
        "CONSULT_DATABASE_URL": make_database_url("consult", "sqlite"),
        "REDIS_URL": redis_server.url,
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",  # the supervisor's own lines; a pipe nobody reads until the end must not fill
    }
    supervisor = subprocess.Popen(
        [*SUITE, "run", "consult-worker", "--supervise"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(_worker_pids(redis_client)) == 1, timeout=60, what="the worker")
        (first,) = _worker_pids(redis_client)
        # Its scheduler runs in a child process of its own, which outlives a SIGKILLed worker.
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: _worker_pids(redis_client) - {first}, timeout=60, what="a new worker")
        assert _group_gone(first), "the killed worker's scheduler was left running"
        (second,) = _worker_pids(redis_client) - {first}
    finally:
        supervisor.send_signal(signal.SIGTERM)
        _, stderr = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, stderr[-2000:]
    assert "consult-worker was killed by SIGKILL; starting it again in 1 s" in stderr
    assert stderr.count("starting it again") == 1  # SIGTERM stopped it for good
    assert _group_gone(second)


@pytest.mark.slow
def test_a_process_that_keeps_dying_makes_the_supervisor_give_up() -> None:
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens: the worker exits at start
        "LOG_FORMAT": "text",
    }
    started = time.monotonic()
    completed = subprocess.run(
        [*SUITE, "run", "consult-worker", "--supervise", "--max-restarts", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1
    lines = [line for line in completed.stderr.splitlines() if "suite.supervise" in line]
    assert [line.split("suite.supervise [] ", 1)[1] for line in lines] == [
        "consult-worker exited with status 1; starting it again in 1 s",
        "consult-worker exited with status 1; starting it again in 2 s",
        "consult-worker exited with status 1 and has died 3 times within 60 s: giving up, which stops the suite",
    ]
    assert " ERROR " in lines[-1]
    assert time.monotonic() - started < 60
