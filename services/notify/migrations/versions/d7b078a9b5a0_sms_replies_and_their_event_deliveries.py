"""SMS replies and their event deliveries

Two-way SMS: each inbound SMS once per Twilio MessageSid (``sms_replies``, the outbox of ``notify.sms_reply``
events), the ledger of those events' deliveries to the booking service (``event_deliveries``), and an index on
``messages.recipient`` to match a reply to the bookings whose messages went to its sender.

Revision ID: d7b078a9b5a0
Revises: ce3f8afdde47
Create Date: 2026-12-05 05:02:33.716844
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "d7b078a9b5a0"
down_revision: str | None = "ce3f8afdde47"
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

    op.create_table(
        "sms_replies",
        sa.Column("id", shared.db.BigIntKey(), autoincrement=True, nullable=False),
        sa.Column("message_sid", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("intent", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("booking_id", shared.db.GUID(length=32), nullable=True),
        sa.Column("booking_version", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("event_id", shared.db.GUID(length=32), nullable=True),
        sa.Column("meaning", sa.String(length=32), nullable=True),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("published_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_replies")),
        sa.UniqueConstraint("event_id", name=op.f("uq_sms_replies_event_id")),
        sa.UniqueConstraint("message_sid", name=op.f("uq_sms_replies_message_sid")),
    )
    with op.batch_alter_table("sms_replies", schema=None) as batch_op:
        batch_op.create_index("ix_sms_replies_booking", ["booking_id"], unique=False)
        batch_op.create_index("ix_sms_replies_unpublished", ["published_at", "event_id"], unique=False)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_recipient", ["recipient"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_recipient")

    with op.batch_alter_table("sms_replies", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_replies_unpublished")
        batch_op.drop_index("ix_sms_replies_booking")

    op.drop_table("sms_replies")
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_event_deliveries_unsettled")

    op.drop_table("event_deliveries")
