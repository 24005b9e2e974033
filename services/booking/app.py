"""Application factory of the booking service."""

from __future__ import annotations

from flask import Flask

from services.booking import cli, relay, views
from services.booking.config import BookingConfig
from services.booking.courses import views as course_views
from services.booking.pages import init_pages
from services.booking.readiness.checklists import load_checklists
from services.booking.runtime import Runtime
from shared.app import add_metrics_collector, common_parts, create_service_app
from shared.config import load
from shared.metrics import FunctionCollector
from shared.queues import BOOKING_QUEUE
from shared.worker import register_worker_cli


def create_app(config: BookingConfig | None = None) -> Flask:
    """Build the booking app from ``config`` (default: the environment)."""
    config = config or load(BookingConfig)
    app, api = create_service_app(
        service="booking",
        config=config,
        database_url=config.database_url,
        title="Booking service",
        description="Providers, appointment types, availability, free slots and bookings of the clinic.",
        import_name=__name__,
    )
    app.extensions["booking"] = Runtime(**common_parts(app), checklists=load_checklists())
    for blueprint in (*views.BLUEPRINTS, course_views.blueprint):
        api.register_blueprint(blueprint)
    init_pages(app, config)
    add_metrics_collector(app, FunctionCollector("outbox", relay.backlog_metrics))
    add_metrics_collector(
        app, FunctionCollector("deliveries", relay.delivery_metrics(config.event_delivery_bound_seconds))
    )
    cli.register(app)
    # notify's SMS replies (attendance) arrive on the booking queue.
    register_worker_cli(app, queues=[BOOKING_QUEUE])
    return app
