"""Course notices

One row per whole-course change (``course.changed``): created by the course event or the first of its
sessions' events, locked by each, and marked once its one patient message is planned (course_messages.py).

Revision ID: 86bec8d5d3ee
Revises: d7b078a9b5a0
Create Date: 2026-12-05 09:16:47.531208
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "86bec8d5d3ee"
down_revision: str | None = "d7b078a9b5a0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "course_notices",
        sa.Column("event_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("course_id", shared.db.GUID(length=32), nullable=True),
        sa.Column("change", sa.String(length=16), nullable=True),
        sa.Column("sessions", shared.db.JSONDocument(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=16), nullable=True),
        sa.Column("occurred_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("anchor_id", shared.db.GUID(length=32), nullable=True),
        sa.Column("anchor_version", sa.Integer(), nullable=True),
        sa.Column("planned_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_course_notices")),
    )
    with op.batch_alter_table("course_notices", schema=None) as batch_op:
        batch_op.create_index("ix_course_notices_anchor", ["anchor_id", "anchor_version"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("course_notices", schema=None) as batch_op:
        batch_op.drop_index("ix_course_notices_anchor")

    op.drop_table("course_notices")
