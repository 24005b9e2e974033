"""rq-dashboard for ops, served under gunicorn like the services: JSON jobs, basic auth, /healthz.

The dashboard shows queues, workers and failed jobs, and can requeue them. It shows each job's description
(event type and id, never patient data) and not its arguments, which carry a booking's contact details:
``RQ_DASHBOARD_SHOW_FULL_ARGS`` is forced off. Keep it off the public internet all the same.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue
from rq.serializers import JSONSerializer

from shared.config import DEV_DASHBOARD_PASSWORD, CommonConfig, check, load, parse_list, setting
from shared.logging import configure_logging


@dataclass(frozen=True)
class DashboardConfig(CommonConfig):
    """Settings of the queue dashboard (plus the common ones).

    The dashboard signs no links and calls no staff API, so it is not given those keys (least privilege):
    their production check is lifted here.
    """

    link_signing_keys: tuple[str, ...] = setting(
        "LINK_SIGNING_KEYS", default=(), parse=parse_list, secret=True, doc="not used by the dashboard"
    )
    api_keys: tuple[str, ...] = setting(
        "API_KEYS", default=(), parse=parse_list, secret=True, doc="not used by the dashboard"
    )

    dashboard_username: str = setting(
        "RQ_DASHBOARD_USERNAME", default="ops", doc="user name for the queue dashboard (HTTP basic auth)"
    )
    dashboard_password: str = setting(
        "RQ_DASHBOARD_PASSWORD",
        default=DEV_DASHBOARD_PASSWORD,
        secret=True,
        min_length=16,
        required_in_production=True,
        doc="password for the queue dashboard (HTTP basic auth)",
    )


def create_app(config: DashboardConfig | None = None) -> Flask:
    """The rq-dashboard app on the suite's Redis, behind basic auth."""
    # Imported here: rq-dashboard reads its module-level settings at import.
    from rq_dashboard.cli import make_flask_app
    from rq_dashboard.web import config as dashboard_settings
    from rq_dashboard.web import setup_rq_connection

    config = config or load(DashboardConfig)
    check(config)
    configure_logging("rq-dashboard", level=config.log_level, fmt=config.log_format)
    dashboard_settings.serializer = JSONSerializer
    app = make_flask_app(None, None, None, "")
    app.config["RQ_DASHBOARD_REDIS_URL"] = config.redis_url
    app.config["RQ_DASHBOARD_SHOW_FULL_ARGS"] = False
    app.config["DEPRECATED_OPTIONS"] = []
    setup_rq_connection(app)
    expected = f"{config.dashboard_username}:{config.dashboard_password}".encode()

    @app.before_request
    def _basic_auth() -> ResponseReturnValue | None:
        if request.path == "/healthz":
            return None
        auth = request.authorization
        given = f"{auth.username}:{auth.password}".encode() if auth and auth.type == "basic" else b""
        if not hmac.compare_digest(given, expected):
            return Response("Sign in", 401, {"WWW-Authenticate": 'Basic realm="suite queues"'})
        return None

    @app.get("/healthz")
    def _healthz() -> ResponseReturnValue:
        return {"status": "ok"}

    return app
