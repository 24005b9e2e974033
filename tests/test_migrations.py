"""Each service's migrations build exactly its models, on SQLite and on PostgreSQL, and unwind cleanly."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shared.db import make_engine
from shared.migrate import alembic_config

SERVICES = ("booking", "notify", "consult", "checkins")


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_models(
    service: str, backend: str, make_database_url: Callable[[str, str], str]
) -> None:
    url = make_database_url(service, backend)
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(
                    conn, opts={"compare_type": True, "version_table": f"alembic_version_{service}"}
                ),
                metadata,
            )
            assert diff == [], diff
            tables = set(inspect(conn).get_table_names())
        assert set(metadata.tables) <= tables
        assert f"alembic_version_{service}" in tables
    finally:
        engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_downgrade_to_base_and_back(
    service: str, backend: str, make_database_url: Callable[[str, str], str]
) -> None:
    url = make_database_url(service, backend)
    cfg = alembic_config(service=service, url=url)
    command.downgrade(cfg, "base")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {f"alembic_version_{service}"}
    finally:
        engine.dispose()
    command.upgrade(cfg, "head")
