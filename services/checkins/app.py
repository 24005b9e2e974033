"""Application factory of the checkins service."""

from __future__ import annotations

from flask import Flask

from services.checkins import cli, metrics, pages, publishing, views
from services.checkins.config import CheckinsConfig
from services.checkins.plans import load_plans
from services.checkins.runtime import Runtime
from services.checkins.service import Rules
from shared.app import add_metrics_collector, common_parts, create_service_app
from shared.config import load
from shared.metrics import FunctionCollector
from shared.queues import CHECKINS_QUEUE
from shared.worker import register_worker_cli


def create_app(config: CheckinsConfig | None = None) -> Flask:
    """Build the checkins app from ``config`` (default: the environment)."""
    config = config or load(CheckinsConfig)
    app, api = create_service_app(
        service="checkins",
        config=config,
        database_url=config.database_url,
        title="Checkins service",
        description="Scheduled follow-up check-ins (PHQ-9, GAD-7, mood, pain), safety alerts and timelines.",
        import_name=__name__,
    )
    app.extensions["checkins"] = Runtime(
        **common_parts(app),
        plans=load_plans(config.plans_dir),
        rules=Rules(rises={"phq9": config.phq9_rise, "gad7": config.gad7_rise}),
    )
    api.register_blueprint(views.staff)
    app.register_blueprint(pages.bp)
    pages.init_i18n(app)
    register_worker_cli(app, queues=[CHECKINS_QUEUE])
    add_metrics_collector(app, FunctionCollector("checkins", metrics.read))
    add_metrics_collector(
        app, FunctionCollector("deliveries", publishing.delivery_metrics(config.event_delivery_bound_seconds))
    )
    cli.register(app)
    return app
