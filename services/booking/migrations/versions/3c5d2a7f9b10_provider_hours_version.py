"""Providers: hours_version, raised only when a provider's hours change

A booking raises ``schedule_version`` (the slot cache key); the hours a new booking is checked against
change far less often, so they get their own version and can be cached across bookings.

Revision ID: 3c5d2a7f9b10
Revises: e8122bea0c5b
Create Date: 2026-11-27 19:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c5d2a7f9b10"
down_revision: str | None = "e8122bea0c5b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hours_version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.drop_column("hours_version")
