"""Starting the suite's processes as a container would: the environment it gets, ``suite run NAME``, SIGTERM."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.suitectl.processes import SERVICES
from tests.deploy.manifests import ROOT
from tests.support.servers import PostgresServer, RedisServer

SUITE = [sys.executable, "-m", "deploy.suitectl"]


@pytest.fixture
def databases(postgres_server: PostgresServer) -> Iterator[dict[str, str]]:
    """Empty databases, one per service, as the Compose init script or a managed server provides them."""
    names = {service: f"proc_{service}_{os.getpid()}" for service in SERVICES}
    for name in names.values():
        postgres_server.execute(f"CREATE DATABASE {name}")
    yield {f"{s.upper()}_DATABASE_URL": postgres_server.url(n) for s, n in names.items()}
    for name in names.values():
        postgres_server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def production_env(databases: dict[str, str], redis_server: RedisServer, tmp_path: Path) -> dict[str, str]:
    """The environment a container gets: production rules, real secrets, PostgreSQL and Redis by URL."""
    redis_server.client().flushall()
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BOOKING_", "NOTIFY_", "CONSULT_", "CHECKINS_"))
        },
        **databases,
        "SUITE_ENV": "production",
        "REDIS_URL": redis_server.url,
        "LINK_SIGNING_KEYS": secrets.token_urlsafe(48),
        "API_KEYS": secrets.token_urlsafe(48),
        # Loopback is an internal test cluster: the documented opt-out lets its public URLs be http.
        "ALLOW_HTTP_PUBLIC_URLS": "true",
        "VIDEO_PROVIDER": "twilio",
        "NOTIFY_SMS_BACKEND": "twilio",
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "3" * 32,
        "NOTIFY_EMAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PASSWORD": secrets.token_urlsafe(24),
        "SMTP_FROM": "Test Clinic <appointments@clinic.test>",
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_API_KEY_SID": "SK" + "2" * 32,
        "TWILIO_API_KEY_SECRET": secrets.token_urlsafe(32),
        "RQ_DASHBOARD_PASSWORD": secrets.token_urlsafe(24),
        "CHECKINS_ONCALL_PHONES": "+14155550100",
        "CHECKINS_ONCALL_EMAILS": "oncall@clinic.test",
        "LOG_FORMAT": "json",
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "TMPDIR": str(tmp_path),
    }


@contextlib.contextmanager
def running(
    name: str, env: dict[str, str], *, suite: list[str] = SUITE, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """``suite run NAME`` in the background; SIGTERM at the end, as the container runtime sends it."""
    process = subprocess.Popen([*suite, "run", name], cwd=cwd, env=env, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
