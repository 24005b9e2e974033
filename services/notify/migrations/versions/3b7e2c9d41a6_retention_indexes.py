"""Retention indexes

The dispatcher prunes what notify no longer needs in bounded batches: rating asks past their expiry
(``rating_asks.expires_at``), inbound SMS past their retention (``sms_replies.received_at``, and no ask pointing
at one: ``rating_asks.reply_id``), and handled events past the inbox's (``processed_events.processed_at``).

Revision ID: 3b7e2c9d41a6
Revises: 8f0d9b5eee40
Create Date: 2026-12-06 20:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3b7e2c9d41a6"
down_revision: str | None = "8f0d9b5eee40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rating_asks", schema=None) as batch_op:
        batch_op.create_index("ix_rating_asks_expires", ["expires_at"], unique=False)
        batch_op.create_index("ix_rating_asks_reply", ["reply_id"], unique=False)

    with op.batch_alter_table("sms_replies", schema=None) as batch_op:
        batch_op.create_index("ix_sms_replies_received", ["received_at"], unique=False)

    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_events_processed_at")

    with op.batch_alter_table("sms_replies", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_replies_received")

    with op.batch_alter_table("rating_asks", schema=None) as batch_op:
        batch_op.drop_index("ix_rating_asks_reply")
        batch_op.drop_index("ix_rating_asks_expires")
