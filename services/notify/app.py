"""Application factory of the notify service."""

from __future__ import annotations

from flask import Flask

from services.notify.config import NotifyConfig
from shared.app import create_service_app
from shared.config import load
from shared.queues import NOTIFY_QUEUE
from shared.worker import register_worker_cli


def create_app(config: NotifyConfig | None = None) -> Flask:
    """Build the notify app from ``config`` (default: the environment)."""
    config = config or load(NotifyConfig)
    app, _api = create_service_app(
        service="notify",
        config=config,
        database_url=config.database_url,
        title="Notify service",
        description="Confirmations and preparation reminders by SMS and email, and provider invites.",
        import_name=__name__,
    )
    register_worker_cli(app, queues=[NOTIFY_QUEUE])
    return app
