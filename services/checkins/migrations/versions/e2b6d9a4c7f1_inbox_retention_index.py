"""Inbox retention index

The scheduler forgets handled events past ``CHECKINS_INBOX_RETENTION_DAYS`` in bounded batches
(``processed_events.processed_at``).

Revision ID: e2b6d9a4c7f1
Revises: 5c1e2a7b9d40
Create Date: 2026-12-07 00:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e2b6d9a4c7f1"
down_revision: str | None = "5c1e2a7b9d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_events_processed_at")
