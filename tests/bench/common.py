"""What every benchmark needs: private servers, gunicorn, wrk with percentiles, a printed table.

Timings are never asserted in tests; benchmarks print them, each beside a baseline from the same run,
because the machine is shared and noisy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from shared.migrate import upgrade
from tests.support.servers import PostgresServer, RedisServer, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

_REPORT_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What wrk measured."""

    requests: int
    seconds: float
    errors: int
    non2xx: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Servers:
    """A private PostgreSQL with one migrated database, and a private Redis."""

    database_url: str
    redis: RedisServer
    workdir: Path


@contextlib.contextmanager
def servers(service: str, database: str) -> Iterator[Servers]:
    """Start PostgreSQL and Redis, create ``database`` at ``service``'s newest migration; remove all after."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{database}-"))
    postgres = PostgresServer()
    redis = RedisServer(workdir)
    postgres.start()
    redis.start()
    try:
        postgres.execute(f"CREATE DATABASE {database}")
        url = postgres.url(database)
        upgrade(service=service, url=url)
        yield Servers(url, redis, workdir)
    finally:
        redis.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# wrk Lua: every request a POST of an empty JSON object.
POST_JSON = """
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(
    url: str,
    *,
    seconds: int = 10,
    connections: int = 32,
    threads: int = 2,
    lua: str = "",
    timeout: str = "10s",
) -> LoadResult:
    """Load ``url`` with wrk; ``lua`` may define ``request``, ``response``, ``init`` (``done`` is ours)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + "\n" + _REPORT_LUA)
    try:
        completed = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                f"--timeout={timeout}",
                "-s",
                script.name,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(script.name)
    line = next(x for x in completed.stdout.splitlines() if x.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"],
        non2xx=data["non2xx"],
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


@contextlib.contextmanager
def gunicorn(
    app_spec: str, *, env: Mapping[str, str] | None = None, workers: int = 2, ready_path: str = "/healthz"
) -> Iterator[str]:
    """Serve ``app_spec`` (``module:callable()``) under gunicorn with the deploy config; yield its URL."""
    port = free_port()
    process_env = {**os.environ, **(env or {}), "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    process_env.setdefault("LOG_LEVEL", "WARNING")
    process = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "deploy/gunicorn.conf.py"), app_spec],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: requests.get(base + ready_path, timeout=1).status_code < 500, timeout=30, what=app_spec
        )
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextlib.contextmanager
def bare_flask(workers: int = 2, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The baseline endpoints under gunicorn, same config and worker count as the services (``tests/bench/bare.py``)."""
    with gunicorn("tests.bench.bare:app", env=env, workers=workers, ready_path="/") as base:
        yield base


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a figure table."""
    cells = [list(map(str, header))] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print(
            "  "
            + "  ".join(
                c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return str(value)


def verdict(name: str, ok: bool, detail: str) -> None:
    """Print whether a target was met (a benchmark reports; it does not fail the build)."""
    print(f"  {'MET ' if ok else 'MISSED'}  {name}: {detail}")
