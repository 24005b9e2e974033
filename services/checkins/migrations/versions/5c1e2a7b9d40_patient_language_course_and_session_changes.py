"""patient language, sessions' course index, session_changes (the timeline's attendance and escort history)

Revision ID: 5c1e2a7b9d40
Revises: d1d0d4f2072a
Create Date: 2026-12-06 01:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "5c1e2a7b9d40"
down_revision: str | None = "d1d0d4f2072a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), server_default="en", nullable=False))
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("course_index", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("course_sessions", sa.Integer(), nullable=True))
    op.create_table(
        "session_changes",
        sa.Column("event_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("patient_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("booking_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("start_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("previous_start", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(length=16), nullable=True),
        sa.Column("escort", sa.String(length=16), nullable=False),
        sa.Column("escort_confirmed_how", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_session_changes_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_session_changes")),
    )
    with op.batch_alter_table("session_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_changes_patient_id"), ["patient_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("session_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_changes_patient_id"))
    op.drop_table("session_changes")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("course_sessions")
        batch_op.drop_column("course_index")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("language")
