"""The checkpoints peers send this node to keep for them: a node's log is witnessed off its
host, so a log cut short or rewritten with a recomputed chain is caught (protocol §13)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0004"
down_revision = "e0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "witnessed",
        sa.Column("node", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("iat", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("node", "seq", "hash"),
    )


def downgrade() -> None:
    op.drop_table("witnessed")
