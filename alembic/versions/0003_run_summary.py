"""run summary: positions on each side, added, removed, adjusted, and the venue's value at mark per currency

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09 10:00:00

Runs recorded before this revision keep a null summary: their figures were never computed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("summary", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("summary")
