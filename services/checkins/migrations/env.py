"""Alembic environment of the checkins service (see shared.migrate)."""

from services.checkins.models import Base
from shared.migrate import run_migrations

run_migrations(Base.metadata)
