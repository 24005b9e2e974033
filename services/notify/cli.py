"""``flask --app services.notify ...`` commands: the dispatcher, and a check of the reminder protocols."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from services.notify import dispatch
from services.notify.preview import preview_all
from services.notify.runtime import get_runtime
from shared.worker import serve_process_metrics


def register(app: Flask) -> None:
    """Add the notify commands to ``app``."""

    @app.cli.command("dispatcher")
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

    @app.cli.command("protocols")
    @click.option("--show", is_flag=True, help="Print every rendered message.")
    @with_appcontext
    def _protocols(show: bool) -> None:
        """Render every step of every protocol with sample data; fail on the first broken template."""
        for protocol, step, channel, text in preview_all(get_runtime()):
            click.echo(f"{protocol.slug} v{protocol.version}  {step.key:<14} {channel:<5} ok")
            if show:
                click.echo("    " + text.replace("\n", "\n    "))
