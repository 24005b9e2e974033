"""Under gunicorn every worker process counts into one metrics page (Prometheus multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from deploy.suitectl.processes import GUNICORN_CONF
from tests.deploy.manifests import ROOT
from tests.ops.conftest import samples
from tests.support.servers import RedisServer, free_port, wait_until


@pytest.mark.slow
def test_one_page_adds_up_every_worker(
    make_database_url: Callable[[str, str], str], redis_server: RedisServer, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # A file left by an earlier server in the same directory must not be added in.
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")
    port = free_port()
    env = {
        **os.environ,
        "BOOKING_DATABASE_URL": make_database_url("booking", "sqlite"),
        "REDIS_URL": redis_server.url,
        "PORT": str(port),
        "WEB_CONCURRENCY": "3",
        # Recycle each worker after 10 requests: the 90 requests are then served by several processes for sure
        # (the kernel need not spread connections), and counts of workers that exited must still add up.
        "GUNICORN_CMD_ARGS": "--max-requests 10",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            str(GUNICORN_CONF),
            "services.booking:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: requests.get(base + "/healthz", timeout=1).status_code == 200, timeout=60, what="gunicorn"
        )
        assert not (metrics_dir / "counter_999999.db").exists()

        def healthz_count() -> float:
            body = requests.get(base + "/metrics", timeout=30).text
            return samples(
                body, "suite_http_request_duration_seconds_count", service="booking", endpoint="/healthz"
            )

        before = healthz_count()
        for _ in range(90):
            assert requests.get(base + "/healthz", timeout=30).status_code == 200
        pids = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("histogram_*.db")}
        assert len(pids) >= 2, "the requests reached more than one worker"
        # All 90, whichever worker answers the scrape.
        for _ in range(5):
            assert healthz_count() - before == 90
    finally:
        server.terminate()
        server.wait(timeout=30)
