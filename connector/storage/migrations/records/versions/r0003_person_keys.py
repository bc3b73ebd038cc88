"""Name search: each person's search keys (64-bit hashes) beside the record, both indexed.

A database upgraded here has empty key tables: re-import (or re-sync) the person
categories to fill them; until then a person is found by reference and document only."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None

CATEGORIES = ("wanted_persons", "terrorism_suspects")


def upgrade() -> None:
    for category in CATEGORIES:
        table = f"{category}_keys"
        op.create_table(
            table,
            sa.Column("key", sa.BigInteger(), nullable=False),
            sa.Column("record_id", sa.String(length=128), nullable=False),
        )
        op.create_index(f"ix_{table}_key", table, ["key"], unique=False)
        op.create_index(f"ix_{table}_record", table, ["record_id"], unique=False)


def downgrade() -> None:
    for category in CATEGORIES:
        op.drop_table(f"{category}_keys")
