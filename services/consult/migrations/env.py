"""Alembic environment of the consult service (see shared.migrate)."""

from services.consult.models import Base
from shared.migrate import run_migrations

run_migrations(Base.metadata)
