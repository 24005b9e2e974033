"""join link secrets

A join token named the booking, its version and the participant, so anyone holding a signing key and a
booking's id could make one. Each consultation now keeps a random secret for its current version that every
join link carries and that is replaced with the version. The column starts empty: links issued before it
carry no secret and stop working, and the new release's link publisher gives each confirmed consultation
whose window is still open a secret and publishes its links again (docs/consult.md). Not backfilled here, so
a publisher of the previous release still running during the rollout cannot publish secret-less links that
the new one would then take for done.

Revision ID: 3944d1a349d9
Revises: 8fda1813bcbf
Create Date: 2026-12-04 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3944d1a349d9"
down_revision: str | None = "8fda1813bcbf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_secret", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.drop_column("link_secret")
