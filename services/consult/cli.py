"""``flask --app services.consult ...`` commands: the sweeper, and join links for ops and ``make run``."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from services.consult import publishing, sweep
from services.consult.models import CONFIRMED, Consultation
from services.consult.runtime import get_runtime
from shared.timeutil import utcnow
from shared.worker import serve_process_metrics, since_option


@click.command("sweep")
@click.option("--once", is_flag=True, help="Sweep one round and stop.")
@with_appcontext
def _sweep(once: bool) -> None:
    """Complete rooms whose time is up and re-send unpublished join links, until stopped."""
    runtime = get_runtime()
    config = runtime.config
    db, redis, video, signer = runtime.db, runtime.redis, runtime.video, runtime.signer
    base_url = config.consult_public_url
    if once:
        result = sweep.sweep_once(
            db=db,
            redis=redis,
            video=video,
            signer=signer,
            base_url=base_url,
            redeliver_seconds=config.event_redeliver_seconds,
        )
        click.echo(json.dumps(result.__dict__))
        return
    serve_process_metrics(current_app)
    sweep.run_sweeper(
        db=db,
        redis=redis,
        video=video,
        signer=signer,
        base_url=base_url,
        interval=config.sweep_seconds,
        inbox_retention_days=config.inbox_retention_days,
        visit_retention_days=config.visit_retention_days,
        redeliver_seconds=config.event_redeliver_seconds,
    )


@click.command("links-replay")
@since_option("the join links")
@with_appcontext
def _links_replay(since: datetime) -> None:
    """After Redis lost its queues: have the sweeper send again the join links published since --since."""
    count = publishing.republish_since(db=get_runtime().db, since=since)
    click.echo(json.dumps({"links_to_resend": count, "since": since.isoformat()}))


@click.command("join-links")
@click.argument("booking_id", type=click.UUID)
@click.option(
    "--open-now",
    is_flag=True,
    help="Development only: open the room window from now, to try the room before the appointment.",
)
@with_appcontext
def _join_links(booking_id: uuid.UUID, open_now: bool) -> None:
    """Print the current join links of a video booking (as JSON)."""
    runtime = get_runtime()
    config = runtime.config
    if open_now and config.is_production:
        raise click.UsageError("--open-now is for development only")
    with runtime.db.transaction() as session:
        consultation = session.get(Consultation, booking_id)
        if consultation is None:
            raise click.ClickException(f"no video consultation for booking {booking_id} (yet)")
        if consultation.status != CONFIRMED:
            raise click.ClickException(f"booking {booking_id} is {consultation.status}")
        if open_now and consultation.opens_at > utcnow():
            consultation.opens_at = utcnow()
        links = publishing.join_links(runtime.signer, config.consult_public_url, consultation)
        click.echo(
            json.dumps(
                {
                    "booking_id": str(booking_id),
                    "version": consultation.version,
                    "opens_at": consultation.opens_at.isoformat(),
                    "closes_at": consultation.closes_at.isoformat(),
                    **links,
                }
            )
        )


COMMANDS = (_sweep, _links_replay, _join_links)


def register(app: Flask) -> None:
    """Add the consult commands to ``app``."""
    for command in COMMANDS:
        app.cli.add_command(command)
