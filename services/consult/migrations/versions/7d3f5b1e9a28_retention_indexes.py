"""Retention indexes

The sweeper deletes in bounded batches the consultations (and their rooms) whose join window closed over
``CONSULT_VISIT_RETENTION_DAYS`` ago (``consultations.closes_at``), and forgets handled events past
``CONSULT_INBOX_RETENTION_DAYS`` (``processed_events.processed_at``).

Revision ID: 7d3f5b1e9a28
Revises: 3944d1a349d9
Create Date: 2026-12-07 00:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7d3f5b1e9a28"
down_revision: str | None = "3944d1a349d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.create_index("ix_consultations_closes_at", ["closes_at"], unique=False)

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_events_processed_at")

    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.drop_index("ix_consultations_closes_at")
