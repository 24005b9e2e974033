"""``flask --app services.checkins ...`` commands: the scheduler, and a provider's timeline link."""

from __future__ import annotations

import json
import uuid

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from services.checkins import links, publishing
from services.checkins.extensions import get_checkins_config, get_publisher
from services.checkins.models import Patient
from shared.db import get_db
from shared.links import current_signer
from shared.loop import run_loop
from shared.timeutil import utcnow
from shared.worker import serve_process_metrics


def register(app: Flask) -> None:
    """Add the checkins commands to ``app``."""

    @app.cli.command("scheduler")
    @click.option("--once", is_flag=True, help="Run one round and stop.")
    @with_appcontext
    def _scheduler(once: bool) -> None:
        """Send due check-ins and alerts, expire old ones, redeliver unacknowledged events; until stopped."""
        publisher = get_publisher()
        if once:
            click.echo(json.dumps(publishing.schedule_once(publisher)))
            return
        serve_process_metrics(current_app)
        interval = get_checkins_config().scheduler_seconds

        def step() -> float:
            publishing.schedule_once(publisher)
            return interval

        run_loop("checkins scheduler", step, max_backoff=60.0)

    @app.cli.command("timeline-link")
    @click.argument("patient_id", type=click.UUID)
    @with_appcontext
    def _timeline_link(patient_id: uuid.UUID) -> None:
        """Print a provider's signed link to a patient's check-in timeline (as JSON)."""
        with get_db().transaction() as session:
            patient = session.get(Patient, patient_id)
            if patient is None:
                raise click.ClickException(f"no check-ins known for patient {patient_id}")
            url = links.timeline_url(
                current_signer(), get_checkins_config().checkins_public_url, patient, utcnow()
            )
        click.echo(json.dumps({"patient_id": str(patient_id), "url": url}))
