"""The image's entry point run without a container: every process by name (dry run), and the real ones started
against a private PostgreSQL and Redis, answering health checks and /metrics, and stopping on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from deploy.suitectl.processes import GUNICORN_CONF, NOT_IN_PROCFILE, PROCESSES, SERVICES
from tests.deploy.launch import SUITE, running
from tests.deploy.manifests import ROOT, procfile
from tests.ops.conftest import samples
from tests.support.servers import free_port, wait_until


def _suite(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SUITE, *args],
        cwd=ROOT,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_launcher_knows_every_procfile_process_with_the_same_command() -> None:
    assert set(PROCESSES) == set(procfile()) | NOT_IN_PROCFILE
    for name, command in procfile().items():
        expected = [str(GUNICORN_CONF) if word == "deploy/gunicorn.conf.py" else word for word in command]
        assert list(PROCESSES[name].argv) == expected, name


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_dry_run_prints_the_command_each_process_would_exec(name: str) -> None:
    completed = _suite("run", name, "--dry-run")
    assert completed.returncode == 0, completed.stderr
    printed = completed.stdout.strip()
    program = Path(sys.executable).parent / PROCESSES[name].argv[0]
    assert printed.startswith(str(program) + " "), "programs come from the image's own virtualenv"
    assert printed.endswith(" ".join(f"'{w}'" if "(" in w else w for w in PROCESSES[name].argv[1:]))


def test_dry_run_of_the_tasks() -> None:
    flask = Path(sys.executable).parent / "flask"
    assert _suite("migrate", "--dry-run").stdout.splitlines() == [
        f"{flask} --app services.{s} db upgrade" for s in SERVICES
    ]
    assert _suite("migrate", "notify", "--dry-run").stdout.splitlines() == [
        f"{flask} --app services.notify db upgrade"
    ]
    assert _suite("seed-demo", "--dry-run").stdout.strip() == f"{flask} --app services.booking seed-demo"
    assert _suite("wait-for-schema", "consult", "--dry-run").stdout.strip() == (
        f"{flask} --app services.consult db is-current"
    )


def test_an_unknown_process_is_refused() -> None:
    completed = _suite("run", "bookings")
    assert completed.returncode == 2
    assert "Invalid value for" in completed.stderr


def _get(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


@pytest.mark.postgres
@pytest.mark.slow
def test_production_processes_migrate_start_answer_and_stop(
    production_env: dict[str, str], tmp_path: Path
) -> None:
    env = production_env
    # Before the migration, every process's init container would keep waiting.
    waiting = _suite("wait-for-schema", "booking", "--timeout", "0", env=env)
    assert waiting.returncode == 1
    assert "database at nothing" in waiting.stderr

    migrated = _suite("migrate", env=env, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    for service in SERVICES:
        ready = _suite("wait-for-schema", service, env=env)
        assert ready.returncode == 0, ready.stderr
    # Running it again changes nothing.
    assert _suite("migrate", env=env, timeout=300).returncode == 0

    web_ports = {service: free_port() for service in SERVICES}
    # A web process serves /metrics on its own second listener, never on its web port.
    web_metrics = {service: free_port() for service in SERVICES}
    # Every process that is not a web server: the relay, the workers, the schedulers.
    metrics_ports = {name: free_port() for name, p in PROCESSES.items() if not p.serves_http}
    with contextlib.ExitStack() as stack:
        for service, port in web_ports.items():
            stack.enter_context(
                running(service, {**env, "PORT": str(port), "METRICS_PORT": str(web_metrics[service])})
            )
        for name, port in metrics_ports.items():
            stack.enter_context(
                running(name, {**env, "METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.1"})
            )
        for service, port in web_ports.items():
            base = f"http://127.0.0.1:{port}"
            wait_until(
                lambda b=base: _get(b + "/readyz").status_code == 200, timeout=60, what=f"{service} /readyz"
            )
            assert _get(base + "/healthz").json() == {"status": "ok"}
            assert _get(base + "/metrics").status_code == 404  # not through the web port
            body = _get(f"http://127.0.0.1:{web_metrics[service]}/metrics").text
            assert (
                samples(
                    body, "suite_http_request_duration_seconds_count", service=service, endpoint="/readyz"
                )
                >= 1
            )
        for name, port in metrics_ports.items():
            url = f"http://127.0.0.1:{port}/metrics"
            wait_until(lambda u=url: _get(u).status_code == 200, timeout=60, what=f"{name} /metrics")
            assert "process_resident_memory_bytes" in _get(url).text
        booking_metrics = _get(f"http://127.0.0.1:{web_metrics['booking']}/metrics").text
        assert samples(booking_metrics, "suite_scrape_ok", collector="outbox") == 1
        notify_metrics = _get(f"http://127.0.0.1:{web_metrics['notify']}/metrics").text
        # The notify worker is registered on its queue, as the "no workers" alert reads it.
        wait_until(
            lambda: (
                samples(
                    _get(f"http://127.0.0.1:{web_metrics['notify']}/metrics").text,
                    "suite_queue_workers",
                    queue="notify",
                )
                == 1
            ),
            timeout=30,
            what="the notify worker's registration",
        )
        assert samples(notify_metrics, "suite_scrape_ok", collector="queues") == 1
    # Everything stopped on SIGTERM, and gunicorn removed its private metrics files.
    assert not list(tmp_path.glob("suite-metrics-*"))


@pytest.mark.postgres
def test_a_production_process_refuses_development_secrets(production_env: dict[str, str]) -> None:
    env = {**production_env, "LINK_SIGNING_KEYS": "dev-only-link-signing-key-change-me-0123456789"}
    completed = _suite("wait-for-schema", "booking", "--timeout", "0", env=env)
    assert completed.returncode == 1
    assert "LINK_SIGNING_KEYS" in completed.stderr


def test_probe_answers_for_health_checks() -> None:
    from tests.support.http import serve

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        status = "200 OK" if environ["PATH_INFO"] == "/ok" else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"x"]

    with serve(app) as base:
        assert _suite("probe", base + "/ok").returncode == 0
        failed = _suite("probe", base + "/down")
        assert failed.returncode == 1
        assert "503" in failed.stderr
    unreachable = _suite("probe", f"http://127.0.0.1:{free_port()}/healthz", "--timeout", "1")
    assert unreachable.returncode == 1
