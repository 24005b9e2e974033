"""Application factory of the consult service."""

from __future__ import annotations

from flask import Flask

from services.consult.config import ConsultConfig
from shared.app import create_service_app
from shared.config import load
from shared.queues import CONSULT_QUEUE
from shared.worker import register_worker_cli


def create_app(config: ConsultConfig | None = None) -> Flask:
    """Build the consult app from ``config`` (default: the environment)."""
    config = config or load(ConsultConfig)
    app, _api = create_service_app(
        service="consult",
        config=config,
        database_url=config.database_url,
        title="Consult service",
        description="Consultation rooms and join links for video visits.",
        import_name=__name__,
    )
    register_worker_cli(app, queues=[CONSULT_QUEUE])
    return app
