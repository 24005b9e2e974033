"""Alembic environment of the notify service (see shared.migrate)."""

from services.notify.models import Base
from shared.migrate import run_migrations

run_migrations(Base.metadata)
