"""Patients: language, the one every later page and message is in (issue 17)

Revision ID: 9a1e5c3d7b20
Revises: 4b9863116eb4
Create Date: 2026-12-05 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9a1e5c3d7b20"
down_revision: str | None = "4b9863116eb4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), server_default="en", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("language")
