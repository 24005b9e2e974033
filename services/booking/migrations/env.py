"""Alembic environment of the booking service (see shared.migrate)."""

from services.booking.models import Base
from shared.migrate import run_migrations

run_migrations(Base.metadata)
