"""Inbox retention index

The relay's prune cycle forgets handled events past ``BOOKING_INBOX_RETENTION_DAYS`` in bounded batches
(``processed_events.processed_at``).

Revision ID: c4e1a8d2f6b3
Revises: b7e2c41d9a05
Create Date: 2026-12-07 00:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c4e1a8d2f6b3"
down_revision: str | None = "b7e2c41d9a05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_events_processed_at")
