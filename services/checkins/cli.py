"""``flask --app services.checkins ...`` commands: the scheduler, and a provider's timeline link."""

from __future__ import annotations

import json
import uuid

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from services.checkins import links, scheduler
from services.checkins.models import Patient
from services.checkins.runtime import get_runtime
from shared.timeutil import utcnow
from shared.worker import serve_process_metrics


def register(app: Flask) -> None:
    """Add the checkins commands to ``app``."""

    @app.cli.command("scheduler")
    @click.option("--once", is_flag=True, help="Run one round and stop.")
    @with_appcontext
    def _scheduler(once: bool) -> None:
        """Send due check-ins and alerts, expire old ones, redeliver unacknowledged events; until stopped."""
        runtime = get_runtime()
        if once:
            click.echo(json.dumps(scheduler.schedule_once(runtime.publisher)))
            return
        serve_process_metrics(current_app)
        scheduler.run_scheduler(runtime.publisher, interval=runtime.config.scheduler_seconds)

    @app.cli.command("timeline-link")
    @click.argument("patient_id", type=click.UUID)
    @with_appcontext
    def _timeline_link(patient_id: uuid.UUID) -> None:
        """Print a provider's signed link to a patient's check-in timeline (as JSON)."""
        runtime = get_runtime()
        with runtime.db.transaction() as session:
            patient = session.get(Patient, patient_id)
            if patient is None:
                raise click.ClickException(f"no check-ins known for patient {patient_id}")
            url = links.timeline_url(runtime.signer, runtime.config.checkins_public_url, patient, utcnow())
        click.echo(json.dumps({"patient_id": str(patient_id), "url": url}))
