"""Fingerprint search: each print's finger keys (64-bit hashes of "any finger" and of its
finger position) beside the record, both indexed.

The keys of prints already held are made by `db upgrade` (or `records reindex`): the
category's keys version changes with this table's arrival."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0005"
down_revision = "r0004"
branch_labels = None
depends_on = None

TABLE = "fingerprints_keys"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
    )
    # The record id in the key's index: a search reads every holder of its keys.
    op.create_index(f"ix_{TABLE}_key", TABLE, ["key", "record_id"], unique=False)
    op.create_index(f"ix_{TABLE}_record", TABLE, ["record_id"], unique=False)


def downgrade() -> None:
    op.drop_table(TABLE)
