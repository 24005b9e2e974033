"""Day checks: the day-before safety checklist's answers and flag

One row per booking: the patient's answers to the checklist of the booking's version, and the flag (all clear,
needs a call) that is all staff see. A table of its own so that answering does not raise the booking's version.

Revision ID: b7d41c9e2a60
Revises: b7e2d4c1a9f3
Create Date: 2026-12-06 01:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "b7d41c9e2a60"
down_revision: str | None = "b7e2d4c1a9f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "day_checks",
        sa.Column("booking_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("booking_version", sa.Integer(), nullable=False),
        sa.Column("checklist", sa.String(length=64), nullable=False),
        sa.Column("checklist_version", sa.Integer(), nullable=False),
        sa.Column("answers", shared.db.JSONDocument(), nullable=False),
        sa.Column("flag", sa.String(length=16), nullable=False),
        sa.Column("answered_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("flag IN ('clear', 'call')", name=op.f("ck_day_checks_flag")),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_day_checks_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_day_checks")),
    )


def downgrade() -> None:
    op.drop_table("day_checks")
