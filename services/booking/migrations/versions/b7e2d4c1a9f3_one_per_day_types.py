"""Appointment types: one_per_day, and the patient day claims that enforce it (issue 17 point 8)

Revision ID: b7e2d4c1a9f3
Revises: 9a1e5c3d7b20
Create Date: 2026-12-06 01:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "b7e2d4c1a9f3"
down_revision: str | None = "9a1e5c3d7b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment_types", schema=None) as batch_op:
        batch_op.add_column(sa.Column("one_per_day", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "patient_day_claims",
        sa.Column("patient_id", shared.db.GUID(length=32), nullable=False),
        sa.Column("appointment_type_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("booking_id", shared.db.GUID(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_type_id"],
            ["appointment_types.id"],
            name=op.f("fk_patient_day_claims_appointment_type_id_appointment_types"),
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_patient_day_claims_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_patient_day_claims_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint(
            "patient_id", "appointment_type_id", "day", name=op.f("pk_patient_day_claims")
        ),
    )
    with op.batch_alter_table("patient_day_claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_day_claims_booking_id"), ["booking_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patient_day_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_day_claims_booking_id"))
    op.drop_table("patient_day_claims")
    with op.batch_alter_table("appointment_types", schema=None) as batch_op:
        batch_op.drop_column("one_per_day")
