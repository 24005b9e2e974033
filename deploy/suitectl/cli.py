"""``suite`` (``python -m deploy.suitectl``): run any process of the suite by name; the operations commands.

Processes and tasks (the container's entry point)::

    suite run booking|relay|notify|notify-worker|consult|consult-worker|...   exec the process
    suite run NAME --supervise                   run it as a child, start it again when it dies (make run)
    suite migrate [booking notify consult checkins]                          every database to head
    suite seed-demo                                                          the demo clinic
    suite processes                                                          list what can run

Operations::

    suite status                          queue depths, workers, oldest waiting job
    suite jobs failed [--queue notify]    jobs that used up their retries
    suite jobs replay --queue notify [--all | JOB_ID...]
    suite timeline BOOKING_ID [--json]    events, messages and room of one booking, from the staff APIs
    suite probe URL                       exit 0 when URL answers 200 (container health checks)

``--dry-run`` prints the commands a process or task would run instead of running them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

import click
from redis import Redis

from deploy.suitectl.processes import (
    PROCESSES,
    SEED_DEMO,
    SERVICES,
    migrate_task,
    recover_queues_task,
    schema_check,
)
from deploy.suitectl.supervise import Policy, supervise
from shared.app import make_redis
from shared.config import CommonConfig, load
from shared.logging import configure_logging
from shared.queues import ALL_QUEUES


def _resolve(argv: Sequence[str]) -> list[str]:
    """``argv`` with its program from this Python's environment (the image's virtualenv) first, else PATH."""
    program = argv[0]
    beside = Path(sys.executable).parent / program
    found = str(beside) if beside.exists() else shutil.which(program) or program
    return [found, *argv[1:]]


def _show(argv: Sequence[str]) -> str:
    return shlex.join(argv)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Run the suite's processes and operate it."""


@cli.command("processes")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_processes(as_json: bool) -> None:
    """List every process, its kind and its command."""
    rows = [
        {"name": p.name, "service": p.service, "kind": p.kind, "command": _show(p.argv), "doc": p.doc}
        for p in PROCESSES.values()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']:<16} {row['kind']:<10} {row['doc']}")


@cli.command("run")
@click.argument("name", type=click.Choice(sorted(PROCESSES)))
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
@click.option(
    "--supervise",
    "supervised",
    is_flag=True,
    help="Run it as a child: start it again when it exits, give up when it keeps exiting (make run).",
)
@click.option(
    "--max-restarts",
    default=Policy.max_restarts,
    show_default=True,
    help="With --supervise: restarts allowed ...",
)
@click.option(
    "--within", default=Policy.window_seconds, show_default=True, help="... within this many seconds."
)
def run(name: str, dry_run: bool, supervised: bool, max_restarts: int, within: float) -> None:
    """Run process NAME in place of this one (signals reach it directly), or under a supervisor."""
    argv = _resolve(PROCESSES[name].argv)
    if dry_run:
        click.echo(_show(argv))
        return
    if supervised:
        config = _config()
        configure_logging(PROCESSES[name].service, level=config.log_level, fmt=config.log_format)
        sys.exit(supervise(name, argv, Policy(max_restarts=max_restarts, window_seconds=within)))
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - the command comes from our own table


def _run_task(commands: Sequence[Sequence[str]], dry_run: bool) -> None:
    for command in commands:
        argv = _resolve(command)
        if dry_run:
            click.echo(_show(argv))
            continue
        click.echo(f"$ {_show(command)}", err=True)
        completed = subprocess.run(argv, check=False)  # noqa: S603 - the command comes from our own table
        if completed.returncode != 0:
            raise click.ClickException(f"{_show(command)} exited with {completed.returncode}")


@cli.command("migrate")
@click.argument("services", nargs=-1, type=click.Choice(SERVICES))
@click.option("--dry-run", is_flag=True, help="Print the commands instead of running them.")
def migrate(services: tuple[str, ...], dry_run: bool) -> None:
    """Apply the migrations of SERVICES (default: all of them), stopping at the first failure."""
    _run_task(migrate_task(services or SERVICES).commands, dry_run)


@cli.command("wait-for-schema")
@click.argument("service", type=click.Choice(SERVICES))
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait before giving up.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between checks.")
@click.option("--dry-run", is_flag=True, help="Print the check instead of running it.")
def wait_for_schema(service: str, timeout: float, interval: float, dry_run: bool) -> None:
    """Wait until SERVICE's database is at the latest migration (an init container of every process)."""
    argv = _resolve(schema_check(service))
    if dry_run:
        click.echo(_show(argv))
        return
    deadline = time.monotonic() + timeout
    while True:
        completed = subprocess.run(argv, check=False, capture_output=True, text=True)  # noqa: S603
        if completed.returncode == 0:
            click.echo(completed.stdout.strip())
            return
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"{service} database not migrated after {timeout:.0f} s: "
                + (completed.stdout.strip() or completed.stderr.strip()[-300:])
            )
        time.sleep(interval)


@cli.command("recover-queues")
@click.option(
    "--since",
    required=True,
    help="ISO 8601 time with an offset, before the oldest job Redis may have lost (see deploy/README.md).",
)
@click.option("--dry-run", is_flag=True, help="Print the commands instead of running them.")
def recover_queues(since: str, dry_run: bool) -> None:
    """After Redis lost its queues: have every service send again what it published since --since."""
    _run_task(recover_queues_task(since).commands, dry_run)


@cli.command("seed-demo")
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
def seed_demo(dry_run: bool) -> None:
    """Create the demo clinic (idempotent)."""
    _run_task(SEED_DEMO.commands, dry_run)


@cli.command("probe")
@click.argument("url")
@click.option("--timeout", default=3.0, show_default=True, help="Seconds to wait for an answer.")
def probe(url: str, timeout: float) -> None:
    """Exit 0 when URL answers 200 (the image has no curl; health checks call this)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - ops-given URL
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"{url}: {type(exc).__name__}") from exc
    if status != 200:
        raise click.ClickException(f"{url}: {status}")


def _config() -> CommonConfig:
    # The ops commands read the settings every service reads (REDIS_URL, the public URLs, API_KEYS).
    return load(CommonConfig)


def _redis(url: str | None) -> Redis:
    return make_redis(url or _config().redis_url)


@cli.command("status")
@click.option("--redis-url", default=None, help="Default: REDIS_URL.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(redis_url: str | None, as_json: bool) -> None:
    """Queue depths, workers and the oldest waiting job of every queue; events not handled in time."""
    from deploy.suitectl.jobs import delivery_states, queue_states

    connection = _redis(redis_url)
    states = queue_states(connection)
    deliveries = delivery_states(connection)
    if as_json:
        click.echo(
            json.dumps(
                {"queues": [vars(s) for s in states], "deliveries": [vars(d) for d in deliveries]}, indent=2
            )
        )
        return
    click.echo(
        f"{'queue':<10}{'queued':>8}{'started':>9}{'scheduled':>11}{'failed':>8}{'workers':>9}  oldest"
    )
    for s in states:
        click.echo(
            f"{s.name:<10}{s.queued:>8}{s.started:>9}{s.scheduled:>11}{s.failed:>8}{s.workers:>9}"
            f"  {s.oldest_age_seconds:.0f} s"
        )
    click.echo(f"\n{'events':<20}{'unhandled':>10}  oldest   (counted)")
    for d in deliveries:
        click.echo(
            f"{d.producer + ' > ' + d.consumer:<20}{d.overdue:>10}  {d.oldest_age_seconds:>5.0f} s"
            f"  ({d.counted_seconds_ago:.0f} s ago)"
        )
    if not deliveries:
        click.echo("(no relay or sweeper has counted yet)")


@cli.group("jobs")
def jobs() -> None:
    """Failed jobs: list and replay."""


@jobs.command("failed")
@click.option("--queue", "queue_name", type=click.Choice(ALL_QUEUES), default=None)
@click.option("--redis-url", default=None, help="Default: REDIS_URL.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs_failed(queue_name: str | None, redis_url: str | None, as_json: bool) -> None:
    """List jobs that used up their retries (the exception's type only: its text may quote data)."""
    from deploy.suitectl.jobs import failed_jobs

    names = (queue_name,) if queue_name else ALL_QUEUES
    found = failed_jobs(_redis(redis_url), names)
    if as_json:
        click.echo(
            json.dumps(
                [{**vars(f), "ended_at": f.ended_at.isoformat() if f.ended_at else None} for f in found],
                indent=2,
            )
        )
        return
    for f in found:
        ended = f.ended_at.strftime("%Y-%m-%dT%H:%M:%SZ") if f.ended_at else "-"
        click.echo(f"{f.queue:<8} {f.job_id:<48} {ended}  {f.error:<24} {f.description}")
    click.echo(f"{len(found)} failed job(s)", err=True)


@jobs.command("replay")
@click.option("--queue", "queue_name", type=click.Choice(ALL_QUEUES), required=True)
@click.option("--all", "replay_all", is_flag=True, help="Every failed job of the queue.")
@click.option("--redis-url", default=None, help="Default: REDIS_URL.")
@click.argument("job_ids", nargs=-1)
def jobs_replay(queue_name: str, replay_all: bool, redis_url: str | None, job_ids: tuple[str, ...]) -> None:
    """Put failed jobs back on their queue (safe: every handler is idempotent)."""
    from deploy.suitectl.jobs import replay

    if replay_all == bool(job_ids):
        raise click.UsageError("name the JOB_IDS or pass --all (not both)")
    requeued, missing = replay(
        _redis(redis_url),
        queue_name=queue_name,
        job_ids=None if replay_all else list(job_ids),
    )
    click.echo(f"requeued {len(requeued)} job(s) on {queue_name}")
    if missing:
        raise click.ClickException("not in the failed registry: " + ", ".join(missing))


@cli.command("timeline")
@click.argument("booking_id", type=click.UUID)
@click.option("--booking-url", default=None, help="Default: BOOKING_PUBLIC_URL.")
@click.option("--notify-url", default=None, help="Default: NOTIFY_PUBLIC_URL.")
@click.option("--consult-url", default=None, help="Default: CONSULT_PUBLIC_URL.")
@click.option("--api-key", default=None, help="Default: the first of API_KEYS.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def timeline(
    booking_id: uuid.UUID,
    booking_url: str | None,
    notify_url: str | None,
    consult_url: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    """Show one booking's timeline: its events, their relay, notify's messages and consult's room."""
    from deploy.suitectl.timeline import build_timeline, timeline_parts

    config = _config()
    key = api_key or config.api_keys[0]
    parts = timeline_parts(
        key=key,
        booking_url=booking_url or config.booking_public_url,
        notify_url=notify_url or config.notify_public_url,
        consult_url=consult_url or config.consult_public_url,
    )
    result = build_timeline(booking_id, parts)
    click.echo(json.dumps(result.as_json(), indent=2) if as_json else result.as_text())
    if "booking" in result.gaps:
        sys.exit(1)


def main() -> None:
    """Entry point of ``suite`` and ``python -m deploy.suitectl``."""
    cli(prog_name="suite")
