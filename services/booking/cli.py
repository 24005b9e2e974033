"""``flask --app services.booking ...`` commands: the outbox relay and the demo seed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from services.booking import relay, seed, service
from services.booking.readiness import service as readiness
from services.booking.runtime import get_runtime
from shared.links import manage_url
from shared.timeutil import utcnow
from shared.worker import serve_process_metrics, since_option


@click.command("relay")
@with_appcontext
def _relay() -> None:
    """Move committed events from the outbox to the Redis queues, until stopped."""
    runtime = get_runtime()
    config = runtime.config
    serve_process_metrics(current_app)
    relay.run_relay(
        db=runtime.db,
        redis=runtime.redis,
        poll_seconds=config.outbox_poll_seconds,
        batch_size=config.outbox_batch_size,
        retention=timedelta(days=config.outbox_retention_days),
        redeliver_seconds=config.event_redeliver_seconds,
        inbox_retention_days=config.inbox_retention_days,
        delivery_bound_seconds=config.event_delivery_bound_seconds,
    )


@click.command("outbox-replay")
@since_option("every event")
@with_appcontext
def _outbox_replay(since: datetime) -> None:
    """After Redis lost its queues: have the relay send again the events published since --since."""
    count = relay.republish_since(db=get_runtime().db, since=since)
    click.echo(json.dumps({"events_to_resend": count, "since": since.isoformat()}))


@click.command("seed-demo")
@click.option("--no-booking", is_flag=True, help="Do not create the demo booking.")
@with_appcontext
def _seed(no_booking: bool) -> None:
    """Create the demo clinic (idempotent) and print what a newcomer opens first, as JSON."""
    runtime = get_runtime()
    config = runtime.config
    with runtime.db.transaction() as session:
        demo = seed.seed_demo(session=session, with_booking=not no_booking)
        # The staff day sheet of the demo booking's day (else today), in the clinic's zone.
        when = demo.booking.start_at if demo.booking else utcnow()
        sheet = readiness.day_sheet_link(
            session=session,
            signer=runtime.signer,
            base_url=config.booking_public_url,
            clinic_id=demo.clinic.id,
            day=when.astimezone(ZoneInfo(demo.clinic.time_zone)).date(),
        )
        summary = {
            "clinic": demo.clinic.slug,
            "booking_page": f"{config.booking_public_url.rstrip('/')}/book/{demo.clinic.slug}",
            "providers": [p.id for p in demo.providers],
            "appointment_types": {slug: t.id for slug, t in demo.types.items()},
            "demo_booking": str(demo.booking.id) if demo.booking else None,
            "demo_manage_url": manage_url(
                config.booking_public_url,
                service.manage_token(runtime.signer, demo.booking),
            )
            if demo.booking
            else None,
            "day_sheet_url": sheet.url,
        }
    click.echo(json.dumps(summary))


COMMANDS = (_relay, _outbox_replay, _seed)


def register(app: Flask) -> None:
    """Add the booking commands to ``app``."""
    for command in COMMANDS:
        app.cli.add_command(command)
