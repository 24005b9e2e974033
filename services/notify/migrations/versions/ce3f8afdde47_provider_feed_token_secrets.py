"""provider feed token secrets

A feed token named the provider by a small integer and the token version, so anyone holding a signing key could
make one for every provider. Each provider's feed row now keeps a random secret that every feed token carries
and rotation replaces. Existing rows get one here; links issued before this revision carry none and stop
working (docs/invites.md: re-issue providers' links after upgrading). Nullable, so pods of the previous release
can still insert rows during the rollout; the next link issued for such a row gives it a secret.

Revision ID: ce3f8afdde47
Revises: 1400c62c5665
Create Date: 2026-12-04 17:40:00.000000
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ce3f8afdde47"
down_revision: str | None = "1400c62c5665"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provider_feeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_secret", sa.String(length=64), nullable=True))
    feeds = sa.table("provider_feeds", sa.column("provider_id", sa.Integer()), sa.column("token_secret"))
    connection = op.get_bind()
    for (provider_id,) in connection.execute(sa.select(feeds.c.provider_id)).all():
        connection.execute(
            feeds.update()
            .where(feeds.c.provider_id == provider_id)
            .values(token_secret=secrets.token_urlsafe(32))
        )


def downgrade() -> None:
    with op.batch_alter_table("provider_feeds", schema=None) as batch_op:
        batch_op.drop_column("token_secret")
