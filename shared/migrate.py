"""Alembic, driven from code: each service keeps its scripts in ``services/<name>/migrations``.

Every service has its own version table, so two services may share one PostgreSQL database in a pinch
without stepping on each other's migration history.
"""

from __future__ import annotations

from typing import Any

import click
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import MetaData

from shared.db import make_engine


def alembic_config(*, service: str, url: str) -> Config:
    """An Alembic config for ``service`` (``booking``, ``notify``, ``consult``) against ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", f"services.{service}:migrations")
    cfg.attributes["url"] = url
    cfg.attributes["version_table"] = f"alembic_version_{service}"
    return cfg


def upgrade(*, service: str, url: str, revision: str = "head") -> None:
    """Apply ``service``'s migrations to ``url`` up to ``revision``."""
    command.upgrade(alembic_config(service=service, url=url), revision)


def revisions(*, service: str, url: str) -> tuple[str | None, str | None]:
    """The database's current revision and the scripts' head revision (None when there is none)."""
    cfg = alembic_config(service=service, url=url)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": cfg.attributes["version_table"]}
            )
            return context.get_current_revision(), head
    finally:
        engine.dispose()


def run_migrations(metadata: MetaData) -> None:
    """Body of a service's ``env.py``: run migrations online against the configured URL."""
    from alembic import context

    cfg = context.config
    url: str = cfg.attributes["url"]
    version_table: str = cfg.attributes["version_table"]
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table": version_table,
        "compare_type": True,
    }
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, render_as_batch=connection.dialect.name == "sqlite", **options
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def register_cli(app: Flask, *, service: str) -> None:
    """Add ``flask db upgrade|revision|current`` for ``service`` to ``app``."""
    group = AppGroup("db", help=f"Migrations of the {service} database.")

    def _cfg() -> Config:
        return alembic_config(service=service, url=app.extensions["db"].url)

    @group.command("upgrade")
    @click.argument("revision", default="head")
    def _upgrade(revision: str) -> None:
        """Apply migrations up to REVISION (default: head)."""
        command.upgrade(_cfg(), revision)

    @group.command("revision")
    @click.option("-m", "--message", required=True)
    def _revision(message: str) -> None:
        """Autogenerate a migration from the models (run against an up-to-date database)."""
        command.revision(_cfg(), message=message, autogenerate=True)

    @group.command("current")
    def _current() -> None:
        """Show the database's revision."""
        command.current(_cfg())

    @group.command("is-current")
    def _is_current() -> None:
        """Exit 0 when the database is at the latest migration, 1 when not (new pods wait on this)."""
        current, head = revisions(service=service, url=app.extensions["db"].url)
        click.echo(f"{service}: database at {current or 'nothing'}, scripts at {head}")
        if current != head:
            raise SystemExit(1)

    app.cli.add_command(group)
