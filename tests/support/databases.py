"""Fresh, migrated databases for each test: cloned from a template migrated once per session."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

from shared.migrate import upgrade
from tests.support.servers import PostgresServer

_counter = itertools.count()


class DatabaseFactory:
    """Hands out new databases of one service on SQLite or PostgreSQL, already at the latest migration."""

    def __init__(self, *, service: str, backend: str, workdir: Path, postgres: PostgresServer | None) -> None:
        self.service = service
        self.backend = backend
        self.workdir = workdir
        self.postgres = postgres
        self._template: str | None = None

    def _prepare_template(self) -> str:
        if self.backend == "sqlite":
            path = self.workdir / f"{self.service}-template.db"
            upgrade(service=self.service, url=f"sqlite:///{path}")
            return str(path)
        assert self.postgres is not None
        name = f"{self.service}_template"
        self.postgres.execute(f"CREATE DATABASE {name}")
        upgrade(service=self.service, url=self.postgres.url(name))
        return name

    def new_url(self) -> str:
        """A new database at head, private to the caller."""
        if self._template is None:
            self._template = self._prepare_template()
        n = next(_counter)
        if self.backend == "sqlite":
            path = self.workdir / f"{self.service}-{n}.db"
            shutil.copyfile(self._template, path)
            return f"sqlite:///{path}"
        assert self.postgres is not None
        name = f"{self.service}_{n}"
        self.postgres.execute(f"CREATE DATABASE {name} TEMPLATE {self._template}")
        return self.postgres.url(name)
