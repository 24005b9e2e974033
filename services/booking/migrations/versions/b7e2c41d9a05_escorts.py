"""Escorts: types that require one, and the support person of a booking (issue 19)

``appointment_types.requires_escort``; ``escorts`` holds one booking's escort in a table of its own so that a
change does not raise the booking's version.

Revision ID: b7e2c41d9a05
Revises: b7d41c9e2a60
Create Date: 2026-12-06 01:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "b7e2c41d9a05"
down_revision: str | None = "b7d41c9e2a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment_types", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("requires_escort", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "escorts",
        sa.Column("booking_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("escort_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("patient_first_name", sa.String(length=100), nullable=False),
        sa.Column("agreed_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("confirmed_how", sa.String(length=8), nullable=True),
        sa.Column("confirmed_version", sa.Integer(), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("confirmed_how IN ('sms', 'staff')", name=op.f("ck_escorts_confirmed_how")),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_escorts_booking_id_bookings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_escorts")),
    )


def downgrade() -> None:
    op.drop_table("escorts")
    with op.batch_alter_table("appointment_types", schema=None) as batch_op:
        batch_op.drop_column("requires_escort")
