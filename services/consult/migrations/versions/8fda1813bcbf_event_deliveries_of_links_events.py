"""Event deliveries: whether notify acknowledged each consult.links_ready event

Links events not acknowledged past the grace period are published again by the sweeper (shared/delivery.py).

Revision ID: 8fda1813bcbf
Revises: ab85b94158ad
Create Date: 2026-12-04 17:11:36.165134
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "8fda1813bcbf"
down_revision: str | None = "ab85b94158ad"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_deliveries",
        sa.Column("event_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("consumer", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("first_sent_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sent_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("settled_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("event_id", "consumer", name=op.f("pk_event_deliveries")),
    )
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_event_deliveries_unsettled", ["outcome", "last_sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_event_deliveries_unsettled")

    op.drop_table("event_deliveries")
