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
from shared.app import get_redis
from shared.db import get_db
from shared.links import current_signer
from shared.timeutil import parse_instant, utcnow
from shared.worker import serve_process_metrics


def _instant(_ctx: click.Context, _param: click.Parameter, value: str) -> datetime:
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def register(app: Flask) -> None:
    """Add the consult commands to ``app``."""

    @app.cli.command("sweep")
    @click.option("--once", is_flag=True, help="Sweep one round and stop.")
    @with_appcontext
    def _sweep(once: bool) -> None:
        """Complete rooms whose time is up and re-send unpublished join links, until stopped."""
        config = get_runtime().config
        db, redis, video, signer = get_db(), get_redis(), get_runtime().video, current_signer()
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
            redeliver_seconds=config.event_redeliver_seconds,
        )

    @app.cli.command("links-replay")
    @click.option(
        "--since",
        callback=_instant,
        required=True,
        help="Send again the join links published at or after this time (ISO 8601 with an offset).",
    )
    @with_appcontext
    def _links_replay(since: datetime) -> None:
        """After Redis lost its queues: have the sweeper send again the join links published since --since."""
        count = publishing.republish_since(db=get_db(), since=since)
        click.echo(json.dumps({"links_to_resend": count, "since": since.isoformat()}))

    @app.cli.command("join-links")
    @click.argument("booking_id", type=click.UUID)
    @click.option(
        "--open-now",
        is_flag=True,
        help="Development only: open the room window from now, to try the room before the appointment.",
    )
    @with_appcontext
    def _join_links(booking_id: uuid.UUID, open_now: bool) -> None:
        """Print the current join links of a video booking (as JSON)."""
        config = get_runtime().config
        if open_now and config.is_production:
            raise click.UsageError("--open-now is for development only")
        with get_db().transaction() as session:
            consultation = session.get(Consultation, booking_id)
            if consultation is None:
                raise click.ClickException(f"no video consultation for booking {booking_id} (yet)")
            if consultation.status != CONFIRMED:
                raise click.ClickException(f"booking {booking_id} is {consultation.status}")
            if open_now and consultation.opens_at > utcnow():
                consultation.opens_at = utcnow()
            links = publishing.join_links(current_signer(), config.consult_public_url, consultation)
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
