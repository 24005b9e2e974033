"""Delivery ledger prune index

The relay's prune deletes the delivery ledger's rows first sent before a cutoff, in bounded batches:
an index on ``event_deliveries.first_sent_at`` so each batch reads only what it deletes.

Revision ID: 0cde7537f5c9
Revises: c4e1a8d2f6b3
Create Date: 2026-12-07 00:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0cde7537f5c9"
down_revision: str | None = "c4e1a8d2f6b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_event_deliveries_first_sent_at", ["first_sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_event_deliveries_first_sent_at")
