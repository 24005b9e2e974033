"""Attendance and processed events

A booking's attendance (unconfirmed, confirmed, declined, arrived, no-show) for one booking version, in a
table of its own so that a change does not raise the booking's version; ``processed_events`` makes the
handler of notify's SMS reply events idempotent.

Revision ID: 4b9863116eb4
Revises: 6147d9b87c44
Create Date: 2026-12-05 05:02:44.405350
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "4b9863116eb4"
down_revision: str | None = "6147d9b87c44"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("event_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("processed_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_table(
        "attendance",
        sa.Column("booking_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("booking_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('unconfirmed', 'confirmed', 'declined', 'arrived', 'no_show')",
            name=op.f("ck_attendance_state"),
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_attendance_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_attendance")),
    )


def downgrade() -> None:
    op.drop_table("attendance")
    op.drop_table("processed_events")
