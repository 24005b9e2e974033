"""Application factory of the consult service."""

from __future__ import annotations

import dataclasses

from flask import Flask

from services.consult import cli, metrics, pages, publishing, views
from services.consult.config import LOCAL, ConsultConfig
from services.consult.local_video import LocalVideo, local_secret
from services.consult.runtime import Runtime
from services.consult.twilio_video import TwilioVideo
from services.consult.video import VideoProvider
from shared.app import add_metrics_collector, common_parts, create_service_app
from shared.config import load
from shared.db import Database
from shared.health import add_readiness_check
from shared.metrics import FunctionCollector
from shared.queues import CONSULT_QUEUE
from shared.worker import register_worker_cli


def make_video_provider(config: ConsultConfig, db: Database) -> VideoProvider:
    """The video provider the config chooses."""
    if config.video_provider == LOCAL:
        return LocalVideo(db=db, secret=local_secret(config.link_signing_keys[-1]))
    return TwilioVideo.from_config(config)


def create_app(config: ConsultConfig | None = None) -> Flask:
    """Build the consult app from ``config`` (default: the environment)."""
    config = config or load(ConsultConfig)
    app, api = create_service_app(
        service="consult",
        config=config,
        database_url=config.database_url,
        title="Consult service",
        description="Consultation rooms and join links for video visits.",
        import_name=__name__,
    )
    runtime = Runtime(**common_parts(app), video=make_video_provider(config, app.extensions["db"]))
    api.register_blueprint(views.join)
    api.register_blueprint(views.consultations)
    if config.video_provider == LOCAL:
        api.register_blueprint(views.local_rooms)
    else:
        sdk = pages.sdk_path(app.root_path)
        runtime = dataclasses.replace(runtime, sdk_fingerprint=pages.sdk_fingerprint(sdk))

        def _sdk_present() -> None:
            # The join page cannot connect without it; see docs/consult.md for how it gets there.
            if not sdk.is_file():
                raise FileNotFoundError(str(sdk))

        add_readiness_check(app, "video-sdk", _sdk_present)
    app.extensions["consult"] = runtime
    app.register_blueprint(pages.bp)
    register_worker_cli(app, queues=[CONSULT_QUEUE])
    add_metrics_collector(app, FunctionCollector("consult", metrics.read))
    add_metrics_collector(
        app, FunctionCollector("deliveries", publishing.delivery_metrics(config.event_delivery_bound_seconds))
    )
    cli.register(app)
    return app
