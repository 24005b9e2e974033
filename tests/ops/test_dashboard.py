"""rq-dashboard as ops run it: behind basic auth, reading the suite's JSON jobs, showing no patient data."""

from __future__ import annotations

import base64

import pytest
import redis

from deploy.suitectl.dashboard import DashboardConfig, create_app
from shared import queues
from shared.config import ConfigError, check, load
from tests.booking.factories import PATIENT
from tests.support.servers import RedisServer


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def dashboard(redis_server: RedisServer, redis_client: redis.Redis) -> object:
    config = load(
        DashboardConfig,
        environ={},
        redis_url=redis_server.url,
        dashboard_username="ops",
        dashboard_password="s3cret-dashboard",
        log_format="text",
    )
    return create_app(config).test_client()


def test_everything_but_the_health_check_needs_the_password(dashboard: object) -> None:
    client = dashboard
    assert client.get("/healthz").status_code == 200  # type: ignore[attr-defined]
    assert client.get("/").status_code == 401  # type: ignore[attr-defined]
    assert client.get("/", headers=_auth("ops", "wrong")).status_code == 401  # type: ignore[attr-defined]
    assert client.get("/", headers=_auth("other", "s3cret-dashboard")).status_code == 401  # type: ignore[attr-defined]
    assert client.get("/", headers=_auth("ops", "s3cret-dashboard")).status_code == 200  # type: ignore[attr-defined]


def test_it_reads_the_suites_json_jobs_and_shows_no_patient_data(
    dashboard: object, redis_client: redis.Redis
) -> None:
    client = dashboard
    job = queues.queue(queues.NOTIFY_QUEUE, redis_client).enqueue_call(
        "services.notify.jobs.handle_booking_event",
        args=(
            {"type": "booking.confirmed", "patient": {"name": PATIENT["name"], "email": PATIENT["email"]}},
        ),
        description="booking.confirmed 1234",
    )
    headers = _auth("ops", "s3cret-dashboard")
    listed = client.get("/0/data/queues.json", headers=headers).json  # type: ignore[attr-defined]
    counts = {q["name"]: q["count"] for q in listed["queues"]}
    assert counts["notify"] == 1
    jobs = client.get("/0/data/jobs/notify/queued/8/asc/1.json", headers=headers)  # type: ignore[attr-defined]
    assert jobs.status_code == 200
    detail = client.get(f"/0/data/job/{job.id}.json", headers=headers)  # type: ignore[attr-defined]
    assert detail.status_code == 200
    assert detail.json["description"] == "booking.confirmed 1234"
    assert [j["id"] for j in jobs.json["jobs"]] == [job.id]
    page = client.get(f"/0/view/job/{job.id}", headers=headers)  # type: ignore[attr-defined]
    assert page.status_code == 200
    for body in (jobs.get_data(as_text=True), detail.get_data(as_text=True)):
        assert PATIENT["email"] not in body
        assert PATIENT["name"] not in body


def test_production_needs_a_real_password() -> None:
    https = {f"{s}_PUBLIC_URL": f"https://{s.lower()}.clinic.test" for s in ("BOOKING", "NOTIFY", "CONSULT")}
    with pytest.raises(ConfigError, match="RQ_DASHBOARD_PASSWORD is a development value"):
        check(load(DashboardConfig, environ={"SUITE_ENV": "production", **https}))
    config = load(
        DashboardConfig,
        environ={
            "SUITE_ENV": "production",
            "RQ_DASHBOARD_PASSWORD": "k2Vq8Lx4Zp7Rt1Wn",
            "REDIS_URL": "redis://r:6379/0",
            **https,
        },
    )
    check(config)
    assert config.dashboard_password == "k2Vq8Lx4Zp7Rt1Wn"
