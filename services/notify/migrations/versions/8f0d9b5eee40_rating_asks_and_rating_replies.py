"""Rating asks and rating replies

A 0-10 rating check-in asked by SMS (``rating_asks``: which phone, which check-in, until when), and the
inbound SMS that answered one (``sms_replies.checkin_id`` and ``rating``: the outbox of ``reply.rating``).

Revision ID: 8f0d9b5eee40
Revises: 86bec8d5d3ee
Create Date: 2026-12-06 04:31:51.896886
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "8f0d9b5eee40"
down_revision: str | None = "86bec8d5d3ee"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rating_asks",
        sa.Column("checkin_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("booking_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("rating", sa.String(length=16), nullable=False),
        sa.Column("asked_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reply_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reply_id"], ["sms_replies.id"], name=op.f("fk_rating_asks_reply_id_sms_replies")
        ),
        sa.PrimaryKeyConstraint("checkin_id", name=op.f("pk_rating_asks")),
    )
    with op.batch_alter_table("rating_asks", schema=None) as batch_op:
        batch_op.create_index("ix_rating_asks_phone", ["phone", "expires_at"], unique=False)

    with op.batch_alter_table("sms_replies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkin_id", shared.db.GUID(length=32), nullable=True))
        batch_op.add_column(sa.Column("rating", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sms_replies", schema=None) as batch_op:
        batch_op.drop_column("rating")
        batch_op.drop_column("checkin_id")

    with op.batch_alter_table("rating_asks", schema=None) as batch_op:
        batch_op.drop_index("ix_rating_asks_phone")

    op.drop_table("rating_asks")
