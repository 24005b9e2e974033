"""Session-wide real servers and the rule that a skipped test fails the run."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings

from shared.logging import configure_logging
from tests.support.browser import launch as launch_browser
from tests.support.databases import DatabaseFactory
from tests.support.servers import PostgresServer, RedisServer
from tests.support.twilio_mock import API_SPEC, VIDEO_SPEC, PrismServer

BACKENDS = ("sqlite", "postgresql")

# Property tests check behaviour, never speed: Hypothesis's 200 ms deadline and its "too slow" health check
# failed a slot-search property once on a loaded machine. Speed is measured in `make bench`.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")
_skipped: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that runs on PostgreSQL (the ``backend`` parameter, or the server itself) is marked ``postgres``."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgresql"
        if on_postgres or "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_sep("=", "skipped tests fail this run", red=True)
        for nodeid in _skipped:
            terminalreporter.write_line(f"SKIPPED (not allowed): {nodeid}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def redis_server(session_dir: Path) -> Iterator[RedisServer]:
    """A private redis-server for the whole session (tests may stop and restart it)."""
    server = RedisServer(session_dir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on an emptied Redis (restarted first if a test left it stopped)."""
    if redis_server.process is None:
        redis_server.start()
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole session."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_factories() -> dict[tuple[str, str], DatabaseFactory]:
    """Per (service, backend) factories of fresh migrated databases."""
    return {}


@pytest.fixture
def make_database_url(
    request: pytest.FixtureRequest,
    session_dir: Path,
    database_factories: dict[tuple[str, str], DatabaseFactory],
) -> Callable[[str, str], str]:
    """``make_database_url(service, backend)``: a new migrated database (PostgreSQL starts on first use)."""

    def make(service: str, backend: str) -> str:
        key = (service, backend)
        if key not in database_factories:
            postgres = request.getfixturevalue("postgres_server") if backend == "postgresql" else None
            database_factories[key] = DatabaseFactory(
                service=service, backend=backend, workdir=session_dir, postgres=postgres
            )
        return database_factories[key].new_url()

    return make


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture(scope="session")
def twilio_api_mock(session_dir: Path) -> Iterator[PrismServer]:
    """Prism serving Twilio's REST API 2010 description (Messages and the rest)."""
    server = PrismServer(API_SPEC, session_dir / "prism-api.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def twilio_video_mock(session_dir: Path) -> Iterator[PrismServer]:
    """Prism serving Twilio's Video v1 description (Rooms)."""
    server = PrismServer(VIDEO_SPEC, session_dir / "prism-video.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Debian Chromium for the whole session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Capture what the suite's own privacy-filtered JSON handler writes."""
    stream = io.StringIO()
    configure_logging("test", fmt="json")
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_suite_handler", False))
    assert isinstance(handler, logging.StreamHandler)
    old = handler.setStream(stream)
    yield stream
    handler.setStream(old)
