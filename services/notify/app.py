"""Application factory of the notify service."""

from __future__ import annotations

import dataclasses

from flask import Flask

from services.notify import cli, metrics, views, webhooks
from services.notify.calendar import views as calendar_views
from services.notify.calendar.entry import check_summaries
from services.notify.calendar.service import settings_salt
from services.notify.config import NotifyConfig
from services.notify.preview import sample_snapshot
from services.notify.protocols import ProtocolBook
from services.notify.rendering import Renderer
from services.notify.replies import publishing as reply_publishing
from services.notify.replies import views as reply_views
from services.notify.runtime import Runtime, worker_queues
from services.notify.senders import Senders, build_senders
from services.notify.senders import views as outbox
from shared.app import add_metrics_collector, common_parts, create_service_app
from shared.config import load
from shared.metrics import FunctionCollector
from shared.worker import register_worker_cli


def create_app(config: NotifyConfig | None = None, *, senders: Senders | None = None) -> Flask:
    """Build the notify app from ``config`` (default: the environment); ``senders`` overrides the settings."""
    config = config or load(NotifyConfig)
    app, api = create_service_app(
        service="notify",
        config=config,
        database_url=config.database_url,
        title="Notify service",
        description="Confirmations and preparation reminders by SMS and email, and provider invites.",
        import_name=__name__,
    )
    runtime = Runtime(
        **common_parts(app),
        book=ProtocolBook(config.protocols_dir),
        renderer=Renderer(config.protocols_dir, opt_out_hint=config.sms_opt_out_hint),
        senders=senders or build_senders(config, app.extensions["db"]),
    )
    runtime = dataclasses.replace(runtime, feed_salt=settings_salt(config, runtime.book))
    check_summaries(runtime.book, sample_snapshot(mode="video", protocol="default"))
    app.extensions["notify"] = runtime
    api.register_blueprint(views.messages)
    api.register_blueprint(reply_views.staff)
    api.register_blueprint(calendar_views.staff)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(calendar_views.bp)
    if "console" in (config.sms_backend, config.email_backend):
        app.register_blueprint(outbox.bp)
    register_worker_cli(app, queues=worker_queues())
    add_metrics_collector(app, FunctionCollector("notify", metrics.read))
    add_metrics_collector(
        app,
        FunctionCollector(
            "deliveries", reply_publishing.delivery_metrics(config.event_delivery_bound_seconds)
        ),
    )
    cli.register(app)
    return app
