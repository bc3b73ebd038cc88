"""Where the live log starts once its oldest rows are archived: one row per archive written.

The newest row's `last_seq` and `head_hash` are the base the live log chains from; a log
that was never archived has no row here and chains from row 1, as before."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0005"
down_revision = "e0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enquiry_archives",
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("file", sa.String(length=200), nullable=False),
        sa.Column("archived_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("last_seq"),
    )


def downgrade() -> None:
    op.drop_table("enquiry_archives")
