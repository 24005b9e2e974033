"""Production fails closed: every weak setting stops every app that reads it, all problems in one message.

Each case starts from strong production settings, changes one thing, and builds the real app of every service
that reads that thing (``create_app``: the web process, and the workers, relay, dispatcher and sweeper, which
are the same app run by ``flask --app``).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from deploy.suitectl.dashboard import DashboardConfig
from deploy.suitectl.dashboard import create_app as create_dashboard
from services.booking import create_app as create_booking
from services.booking.config import BookingConfig
from services.checkins import create_app as create_checkins
from services.checkins.config import CheckinsConfig
from services.consult import create_app as create_consult
from services.consult.config import ConsultConfig
from services.notify import create_app as create_notify
from services.notify.config import NotifyConfig
from shared.config import DEV_API_KEY, DEV_DASHBOARD_PASSWORD, DEV_LINK_KEY, ConfigError, load


def strong() -> str:
    """A key as the docs tell ops to make one."""
    return secrets.token_urlsafe(48)


LINK_KEY, STAFF_KEY = strong(), strong()
STRONG: dict[str, str] = {
    "SUITE_ENV": "production",
    "REDIS_URL": "rediss://:pw@redis.internal:6380/0",
    "LINK_SIGNING_KEYS": LINK_KEY,
    "API_KEYS": STAFF_KEY,
    "BOOKING_PUBLIC_URL": "https://book.clinic.test",
    "NOTIFY_PUBLIC_URL": "https://notify.clinic.test",
    "CONSULT_PUBLIC_URL": "https://visit.clinic.test",
    "BOOKING_DATABASE_URL": "postgresql+psycopg://booking:pw@db.internal:5432/booking",
    "NOTIFY_DATABASE_URL": "postgresql+psycopg://notify:pw@db.internal:5432/notify",
    "CONSULT_DATABASE_URL": "postgresql+psycopg://consult:pw@db.internal:5432/consult",
    "CHECKINS_DATABASE_URL": "postgresql+psycopg://checkins:pw@db.internal:5432/checkins",
    "CHECKINS_PUBLIC_URL": "https://checkin.clinic.test",
    "CHECKINS_ONCALL_PHONES": "+14155550100",
    "CHECKINS_ONCALL_EMAILS": "oncall@clinic.test",
    "NOTIFY_SMS_BACKEND": "twilio",
    "NOTIFY_EMAIL_BACKEND": "smtp",
    "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
    "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
    "TWILIO_MESSAGING_SERVICE_SID": "MG" + secrets.token_hex(16),
    "SMTP_HOST": "smtp.relay.test",
    "SMTP_USERNAME": "apikey",
    "SMTP_PASSWORD": strong(),
    "SMTP_FROM": "Clinic <appointments@clinic.test>",
    "VIDEO_PROVIDER": "twilio",
    "TWILIO_API_KEY_SID": "SK" + secrets.token_hex(16),
    "TWILIO_API_KEY_SECRET": strong(),
    "RQ_DASHBOARD_PASSWORD": strong(),
}
APPS: dict[str, tuple[type[Any], Callable[[Any], Flask]]] = {
    "booking": (BookingConfig, create_booking),
    "notify": (NotifyConfig, create_notify),
    "consult": (ConsultConfig, create_consult),
    "checkins": (CheckinsConfig, create_checkins),
    "dashboard": (DashboardConfig, create_dashboard),
}
SECRETS = {
    f.metadata["env"] for cls, _ in APPS.values() for f in dataclasses.fields(cls) if f.metadata.get("secret")
}
SERVICES = ("booking", "notify", "consult", "checkins")
EVERY = (*SERVICES, "dashboard")


def build(name: str, environ: dict[str, str]) -> Flask:
    """The app of ``name`` as a production process builds it from ``environ``."""
    cls, factory = APPS[name]
    app = factory(load(cls, environ=environ))
    if "db" in app.extensions:
        app.extensions["db"].dispose()
    return app


# (what changes, the apps that refuse it, what the refusal names): the list first, then more. The
# dashboard uses no staff or link key, but one it is given must still not be weak (Compose gives it them).
WEAK: list[tuple[dict[str, str], tuple[str, ...], str]] = [
    ({"API_KEYS": f"{DEV_API_KEY},{STAFF_KEY}"}, EVERY, "API_KEYS (item 1 of 2) is a development value"),
    ({"LINK_SIGNING_KEYS": f"{DEV_LINK_KEY},{LINK_KEY}"}, EVERY, "LINK_SIGNING_KEYS (item 1 of 2)"),
    ({"LINK_SIGNING_KEYS": f"{LINK_KEY},{DEV_LINK_KEY}"}, EVERY, "LINK_SIGNING_KEYS (item 2 of 2)"),
    ({"API_KEYS": "x"}, EVERY, "API_KEYS (item 1 of 1) is weak"),
    ({"API_KEYS": ""}, SERVICES, "API_KEYS is required in production"),
    ({"API_KEYS": ","}, SERVICES, "API_KEYS is required in production"),
    ({"LINK_SIGNING_KEYS": "a" * 32}, EVERY, "LINK_SIGNING_KEYS (item 1 of 1) is weak"),
    ({"BOOKING_SECRET_KEY": "x"}, ("booking",), "BOOKING_SECRET_KEY is weak"),
    ({"TWILIO_AUTH_TOKEN": "x"}, ("notify",), "TWILIO_AUTH_TOKEN is weak"),
    ({"BOOKING_DATABASE_URL": "sqlite:///var/booking.db"}, ("booking",), "BOOKING_DATABASE_URL must be"),
    ({"NOTIFY_DATABASE_URL": "sqlite:///var/notify.db"}, ("notify",), "NOTIFY_DATABASE_URL must be"),
    ({"CONSULT_DATABASE_URL": "sqlite:///var/consult.db"}, ("consult",), "CONSULT_DATABASE_URL must be"),
    ({"CHECKINS_DATABASE_URL": "sqlite:///var/c.db"}, ("checkins",), "CHECKINS_DATABASE_URL must be"),
    ({"CHECKINS_PUBLIC_URL": "http://checkin.clinic.test"}, ("checkins",), "CHECKINS_PUBLIC_URL must be"),
    ({"CHECKINS_ONCALL_PHONES": ""}, ("checkins",), "CHECKINS_ONCALL_PHONES must name at least one"),
    ({"CHECKINS_ONCALL_EMAILS": ""}, ("checkins",), "CHECKINS_ONCALL_EMAILS must name at least one"),
    ({"BOOKING_PUBLIC_URL": "http://127.0.0.1:8001"}, EVERY, "BOOKING_PUBLIC_URL must be an https://"),
    ({"NOTIFY_PUBLIC_URL": "http://notify.clinic.test"}, EVERY, "NOTIFY_PUBLIC_URL must be an https://"),
    ({"CONSULT_PUBLIC_URL": "visit.clinic.test"}, EVERY, "CONSULT_PUBLIC_URL must be an https://"),
    ({"TWILIO_API_BASE_URL": "http://127.0.0.1:4010"}, ("notify",), "TWILIO_API_BASE_URL is a test-only"),
    (
        {"TWILIO_VIDEO_BASE_URL": "http://127.0.0.1:4010"},
        ("consult",),
        "TWILIO_VIDEO_BASE_URL is a test-only",
    ),
    ({"RATE_LIMIT_STORAGE_URL": "memory://"}, ("booking",), "RATE_LIMIT_STORAGE_URL must not be memory://"),
    ({"SMTP_SECURITY": "none"}, ("notify",), "SMTP_SECURITY must be starttls or ssl in production"),
    ({"SMTP_PASSWORD": ""}, ("notify",), "SMTP_PASSWORD is required in production"),
    # More of the same kinds.
    ({"RQ_DASHBOARD_PASSWORD": DEV_DASHBOARD_PASSWORD}, ("dashboard",), "RQ_DASHBOARD_PASSWORD is a dev"),
    ({"RQ_DASHBOARD_PASSWORD": "hunter2"}, ("dashboard",), "RQ_DASHBOARD_PASSWORD is weak"),
    ({"API_KEYS": "replace-with-a-long-random-key-0123456789"}, EVERY, "API_KEYS (item 1 of 1) is weak"),
    ({"TWILIO_AUTH_TOKEN": ""}, ("notify",), "TWILIO_AUTH_TOKEN is required in production"),
    ({"TWILIO_API_KEY_SECRET": "s" * 40}, ("consult",), "TWILIO_API_KEY_SECRET is weak"),
    ({"SMTP_PASSWORD": "replace-me"}, ("notify",), "SMTP_PASSWORD is weak"),
    ({"API_KEYS": LINK_KEY}, EVERY, "API_KEYS and LINK_SIGNING_KEYS share a value"),
    ({"VIDEO_PROVIDER": "local"}, ("consult",), "VIDEO_PROVIDER must be twilio in production"),
    ({"NOTIFY_EMAIL_BACKEND": "console"}, ("notify",), "NOTIFY_EMAIL_BACKEND must not be console"),
    ({"NOTIFY_SMS_BACKEND": "console"}, ("notify",), "NOTIFY_SMS_BACKEND must not be console"),
    ({"BOOKING_DATABASE_URL": "mysql://b:pw@db/booking"}, ("booking",), "BOOKING_DATABASE_URL must be"),
]


@pytest.mark.parametrize("name", EVERY)
def test_strong_production_settings_start_every_app(name: str) -> None:
    build(name, STRONG)


@pytest.mark.parametrize(("change", "apps", "message"), WEAK, ids=[str(sorted(c)) for c, _, _ in WEAK])
def test_each_weak_setting_stops_every_app_that_reads_it(
    change: dict[str, str], apps: tuple[str, ...], message: str
) -> None:
    environ = {**STRONG, **change}
    for name in apps:
        with pytest.raises(ConfigError) as caught:
            build(name, environ)
        text = str(caught.value)
        assert message in text, (name, text)
        # The refusal names the setting, never the secret.
        for key, value in {**STRONG, **change}.items():
            if key in SECRETS and len(value) > 1:
                for item in value.split(","):
                    assert item not in text, key
    for name in set(EVERY) - set(apps):
        build(name, environ)  # a setting an app does not read does not stop it


def test_one_message_lists_every_problem_at_once() -> None:
    environ = {
        **STRONG,
        "API_KEYS": f"{DEV_API_KEY},x",
        "BOOKING_PUBLIC_URL": "http://book.clinic.test",
        "BOOKING_DATABASE_URL": "sqlite:///var/booking.db",
        "RATE_LIMIT_STORAGE_URL": "memory://",
        "OUTBOX_BATCH_SIZE": "0",
    }
    with pytest.raises(ConfigError) as caught:
        build("booking", environ)
    lines = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    assert len(lines) == 6, str(caught.value)
    for name in ("API_KEYS (item 1", "API_KEYS (item 2", "BOOKING_PUBLIC_URL", "BOOKING_DATABASE_URL"):
        assert any(name in line for line in lines), name
    assert any("RATE_LIMIT_STORAGE_URL" in line for line in lines)
    assert any("OUTBOX_BATCH_SIZE must be at least 1" in line for line in lines)


def test_http_public_urls_only_with_the_documented_opt_out() -> None:
    internal = {
        **STRONG,
        "BOOKING_PUBLIC_URL": "http://booking.suite.svc:8000",
        "NOTIFY_PUBLIC_URL": "http://notify.suite.svc:8000",
        "CONSULT_PUBLIC_URL": "http://consult.suite.svc:8000",
    }
    with pytest.raises(ConfigError, match="ALLOW_HTTP_PUBLIC_URLS"):
        build("booking", internal)
    for name in EVERY:
        build(name, {**internal, "ALLOW_HTTP_PUBLIC_URLS": "true"})
    with pytest.raises(ConfigError, match="BOOKING_PUBLIC_URL"):
        build("booking", {**internal, "ALLOW_HTTP_PUBLIC_URLS": "true", "BOOKING_PUBLIC_URL": "ftp://x"})


def test_development_keeps_its_defaults_and_still_checks_consistency() -> None:
    development = {"BOOKING_DATABASE_URL": "sqlite:///:memory:"}
    build("booking", development)
    with pytest.raises(ConfigError, match="OUTBOX_BATCH_SIZE must be at least 1"):
        build("booking", {**development, "OUTBOX_BATCH_SIZE": "0"})


# --- the edges: docs and metrics ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_production_serves_no_api_docs_unless_enabled(name: str) -> None:
    client = build(name, STRONG).test_client()
    for path in ("/api/docs", "/api/openapi.json", "/api/docs/assets/swagger-ui.css"):
        assert client.get(path).status_code == 404, path
    enabled = build(name, {**STRONG, "API_DOCS": "true"}).test_client()
    assert enabled.get("/api/docs").status_code == 200
    assert enabled.get("/api/openapi.json").json["info"]["title"]
    development = build(name, {f"{name.upper()}_DATABASE_URL": "sqlite:///:memory:"}).test_client()
    assert development.get("/api/docs").status_code == 200
    off = build(name, {f"{name.upper()}_DATABASE_URL": "sqlite:///:memory:", "API_DOCS": "false"})
    assert off.test_client().get("/api/openapi.json").status_code == 404


@pytest.mark.parametrize("name", SERVICES)
def test_metrics_answer_only_on_the_metrics_listener(name: str) -> None:
    public = "http://service.clinic.test"
    assert build(name, STRONG).test_client().get("/metrics", base_url=public).status_code == 404
    client = build(name, {**STRONG, "METRICS_PORT": "9100"}).test_client()
    assert client.get("/metrics", base_url=public).status_code == 404
    assert client.get("/metrics", base_url=public + ":9100").status_code == 200
    # The metrics listener answers nothing else.
    assert client.get("/healthz", base_url=public + ":9100").status_code == 404
    assert client.get("/healthz", base_url=public).status_code == 200
    development = build(name, {f"{name.upper()}_DATABASE_URL": "sqlite:///:memory:"}).test_client()
    assert development.get("/metrics").status_code == 200
