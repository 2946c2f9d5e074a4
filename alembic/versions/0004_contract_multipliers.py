"""contract multipliers: each fill, lot and trade records the multiplier its P&L and value are reckoned with

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:30:00

Rows recorded before this revision get 1, which is what their P&L was computed with.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.types import Amount

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("fills", "lots", "trades")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("multiplier", Amount(), server_default="1", nullable=False))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("multiplier")
