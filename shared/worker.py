"""RQ workers that run a service's jobs inside its app context.

The worker builds the app once, at start, and every job runs with ``current_app`` set, so job functions
stay plain top-level functions that take ids and JSON data. Workers are ``SimpleWorker``s: jobs run in the
worker process (no fork per job), which keeps database pools valid and is about three times the
throughput on these machines; scale by running more worker processes.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from shared.app import get_redis
from shared.queues import queue


def make_worker(queue_names: list[str], *, name: str | None = None) -> SimpleWorker:
    """A worker on ``queue_names`` using the current app's Redis (call inside an app context)."""
    connection = get_redis()
    return SimpleWorker(
        [queue(q, connection) for q in queue_names],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
    )


def register_worker_cli(app: Flask, *, queues: list[str]) -> None:
    """Add ``flask worker`` that processes ``queues`` for ``app``."""

    @app.cli.command("worker")
    @click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
    @click.option("--name", default=None, help="Worker name (default: host and pid).")
    @with_appcontext
    def _worker(burst: bool, name: str | None) -> None:
        """Process this service's queues."""
        worker = make_worker(list(queues), name=name)
        worker.work(burst=burst, with_scheduler=True, logging_level=None)
