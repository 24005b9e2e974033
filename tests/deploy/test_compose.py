"""deploy/compose.yaml: valid against the Compose spec, in step with the Procfile, and its PostgreSQL init script."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.suitectl.processes import NOT_IN_PROCFILE, PROCESSES
from shared.config import ConfigError
from tests.deploy.manifests import (
    DEPLOY,
    PROCESS_VARIABLES,
    compose,
    compose_environment,
    env_file,
    known_settings,
    procfile,
)
from tests.shared.test_production import build
from tests.support.servers import PostgresServer

COMPOSE = compose()
SERVICES: dict[str, Any] = COMPOSE["services"]
# The engines and the one-off steps; every other service is a process of the suite.
INFRASTRUCTURE = {"redis", "postgres"}
STEPS = {"migrate", "seed-demo"}


def test_the_compose_spec_accepts_it() -> None:
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_every_process_has_a_service_that_runs_it_by_name() -> None:
    processes = set(procfile()) | NOT_IN_PROCFILE
    suite_services = set(SERVICES) - INFRASTRUCTURE - STEPS
    assert suite_services == processes
    for name in processes:
        assert SERVICES[name]["command"] == ["run", name]
        assert name in PROCESSES


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        if name in STEPS:
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in set(SERVICES) - INFRASTRUCTURE - STEPS:
        test = SERVICES[name]["healthcheck"]["test"]
        kind = PROCESSES[name]
        path = "/healthz" if name == "rq-dashboard" else "/readyz" if kind.kind == "web" else "/metrics"
        port = 8000 if kind.serves_http else 9100
        assert test == [
            "CMD",
            "python",
            "-m",
            "deploy.suitectl",
            "probe",
            f"http://127.0.0.1:{port}{path}",
        ], name


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    redis = SERVICES["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_migrations_run_before_every_process_that_uses_a_database() -> None:
    assert SERVICES["migrate"]["command"] == ["migrate"]
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in set(SERVICES) - INFRASTRUCTURE - {"migrate", "rq-dashboard"}:
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_each_process_gets_only_its_own_database() -> None:
    for name in set(SERVICES) - INFRASTRUCTURE - {"migrate", "rq-dashboard"}:
        env = SERVICES[name]["environment"]
        service = "booking" if name == "seed-demo" else PROCESSES[name].service
        urls = {key for key in env if key.endswith("_DATABASE_URL")}
        assert urls == {f"{service.upper()}_DATABASE_URL"}, name
        assert f"@postgres:5432/{service}" in env[f"{service.upper()}_DATABASE_URL"]
    assert not any(k.endswith("_DATABASE_URL") for k in SERVICES["rq-dashboard"]["environment"])


def test_every_variable_given_to_a_process_is_a_setting() -> None:
    known = known_settings() | PROCESS_VARIABLES
    for name in set(SERVICES) - INFRASTRUCTURE:
        unknown = set(SERVICES[name]["environment"]) - known
        assert not unknown, f"{name}: {sorted(unknown)} are read by nothing"


def test_secrets_have_no_default_in_the_file() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for secret in (
        "LINK_SIGNING_KEYS",
        "API_KEYS",
        "POSTGRES_PASSWORD",
        "BOOKING_DB_PASSWORD",
        "RQ_DASHBOARD_PASSWORD",
        "TWILIO_API_KEY_SECRET",
    ):
        assert f"${{{secret}:?" in text, f"{secret} must be required (${{{secret}:?...}})"
    example = (DEPLOY / "compose.env.example").read_text()
    for line in example.splitlines():
        if line and not line.startswith("#"):
            key = line.split("=", 1)[0]
            assert f"${{{key}" in text, f"compose.env.example sets {key}, which compose.yaml never reads"


# The app each Compose service builds (workers, relay, dispatcher and sweeper build their service's app).
APP_OF = {
    "booking": "booking",
    "notify": "notify",
    "consult": "consult",
    "checkins": "checkins",
    "rq-dashboard": "dashboard",
}


def _filled_in(example: dict[str, str]) -> dict[str, str]:
    """The example as its comments tell ops to fill it in: a generated secret for every placeholder."""
    filled = {}
    for key, value in example.items():
        if "replace" in value:
            filled[key] = secrets.token_urlsafe(48)
        elif "xxxx" in value:
            filled[key] = value[:2] + secrets.token_hex(16)
        else:
            filled[key] = value
    return filled


def test_the_documented_example_starts_once_filled_in_and_not_before() -> None:
    example = env_file(DEPLOY / "compose.env.example")
    filled = _filled_in(example)
    for service, app in APP_OF.items():
        build(app, compose_environment(service, filled))
        with pytest.raises(ConfigError) as caught:
            build(app, compose_environment(service, example))
        refused = str(caught.value)
        names = ["RQ_DASHBOARD_PASSWORD"] if app == "dashboard" else ["LINK_SIGNING_KEYS", "API_KEYS"]
        names += {"notify": ["TWILIO_AUTH_TOKEN", "SMTP_PASSWORD"], "consult": ["TWILIO_API_KEY_SECRET"]}.get(
            app, []
        )
        for name in names:
            assert name in refused, (service, name, refused)


def test_processes_run_read_only_as_the_image_user() -> None:
    for name in set(SERVICES) - INFRASTRUCTURE:
        assert SERVICES[name]["read_only"] is True
        assert SERVICES[name]["tmpfs"] == ["/tmp"]
        assert "user" not in SERVICES[name]


@pytest.mark.postgres
def test_the_init_script_gives_each_service_its_own_database_and_role(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres_server.port),
        "POSTGRES_USER": "postgres",
        "BOOKING_DB_PASSWORD": "b-secret",
        "NOTIFY_DB_PASSWORD": "n-secret",
        "CONSULT_DB_PASSWORD": "c-secret",
        "CHECKINS_DB_PASSWORD": "k-secret",
    }
    completed = subprocess.run(
        ["sh", str(DEPLOY / "postgres/init-databases.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    try:
        for service in ("booking", "notify", "consult", "checkins"):
            dsn = f"host=127.0.0.1 port={postgres_server.port} user={service} dbname={service}"
            with psycopg.connect(dsn) as conn:
                owner = conn.execute(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
                ).fetchone()
                assert owner == (service,)
                conn.execute("CREATE TABLE t (x int)")
            other = "notify" if service == "booking" else "booking"
            with pytest.raises(psycopg.OperationalError, match="permission denied"):
                psycopg.connect(f"host=127.0.0.1 port={postgres_server.port} user={service} dbname={other}")
    finally:
        for service in ("booking", "notify", "consult", "checkins"):
            postgres_server.execute(f"DROP DATABASE IF EXISTS {service} WITH (FORCE)")
            postgres_server.execute(f"DROP ROLE IF EXISTS {service}")


def test_the_init_script_refuses_a_missing_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DB_PASSWORD")}
    completed = subprocess.run(
        ["sh", str(DEPLOY / "postgres/init-databases.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert "BOOKING_DB_PASSWORD is not set" in completed.stderr


def test_web_metrics_are_published_on_loopback_only() -> None:
    for name in ("booking", "notify", "consult", "checkins"):
        ports = SERVICES[name]["ports"]
        metrics = [p for p in ports if p.endswith(":9100")]
        assert len(metrics) == 1, name
        assert metrics[0].startswith("127.0.0.1:"), metrics
        assert SERVICES[name]["environment"]["METRICS_PORT"] == "9100"
    for name, service in SERVICES.items():
        for published in service.get("ports", []):
            assert published.endswith(":8000") or published.startswith("127.0.0.1:"), (name, published)
