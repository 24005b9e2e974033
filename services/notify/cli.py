"""``flask --app services.notify ...`` commands: the dispatcher, a check of the reminder protocols, and a
provider's calendar feed link."""

from __future__ import annotations

import json
import uuid

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from services.notify import dispatch, escorts, planning
from services.notify.calendar import service as feeds
from services.notify.preview import preview_all
from services.notify.runtime import get_runtime
from shared.timeutil import utcnow
from shared.worker import serve_process_metrics


@click.command("dispatcher")
@click.option("--once", is_flag=True, help="Make one pass and print what it did.")
@with_appcontext
def _dispatcher(once: bool) -> None:
    """Queue due messages and repair lost or interrupted ones, every few seconds, until stopped."""
    runtime = get_runtime()
    if once:
        report = dispatch.dispatch_once(runtime)
        click.echo(json.dumps({k: v for k, v in vars(report).items() if k != "job_ids"}))
        return
    serve_process_metrics(current_app)
    dispatch.run_dispatcher(runtime, interval=runtime.config.dispatch_interval_seconds)


@click.command("replan")
@click.argument("booking_id", type=click.UUID)
@with_appcontext
def _replan(booking_id: uuid.UUID) -> None:
    """Plan a booking's missing reminders from its protocol as it is now (existing ones stay)."""
    runtime = get_runtime()
    with runtime.db.transaction() as session:
        added = planning.replan_booking(
            session=session,
            book=runtime.book,
            booking_id=booking_id,
            quiet=runtime.config.quiet_hours,
            now=utcnow(),
        )
        if added is not None:
            added += escorts.replan(
                session=session,
                book=runtime.book,
                booking_id=booking_id,
                quiet=runtime.config.quiet_hours,
                now=utcnow(),
            )
    if added is None:
        raise click.ClickException(f"notify has not seen booking {booking_id}")
    click.echo(json.dumps({"booking_id": str(booking_id), "reminders_added": added}))


@click.command("protocols")
@click.option("--show", is_flag=True, help="Print every rendered message.")
@with_appcontext
def _protocols(show: bool) -> None:
    """Render every step of every protocol with sample data; fail on the first broken template."""
    for protocol, step, channel, text in preview_all(get_runtime()):
        click.echo(f"{protocol.slug} v{protocol.version}  {step.key:<14} {channel:<5} ok")
        if show:
            click.echo("    " + text.replace("\n", "\n    "))


@click.command("feed-link")
@click.argument("provider_id", type=click.IntRange(min=1))
@click.option("--rotate", is_flag=True, help="Revoke every older link first.")
@with_appcontext
def _feed_link(provider_id: int, rotate: bool) -> None:
    """Print a provider's private calendar feed link (as the staff API gives it)."""
    runtime = get_runtime()
    issue = feeds.rotate_link if rotate else feeds.feed_link
    with runtime.db.transaction() as session:
        link = issue(
            session=session,
            signer=runtime.signer,
            config=runtime.config,
            provider_id=provider_id,
            now=utcnow(),
        )
    click.echo(
        json.dumps(
            {
                "provider_id": link.provider_id,
                "url": link.url,
                "webcal_url": link.webcal_url,
                "expires_at": link.expires_at.isoformat(),
                "token_version": link.token_version,
            }
        )
    )


COMMANDS = (_dispatcher, _replan, _protocols, _feed_link)


def register(app: Flask) -> None:
    """Add the notify commands to ``app``."""
    for command in COMMANDS:
        app.cli.add_command(command)
