"""DNA search: each profile's index keys (64-bit hashes of triple-locus genotypes) beside
the record, both indexed.

The keys of profiles already held are made by `db upgrade` (or `records reindex`): the
category's keys version changes with this table's arrival."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0004"
down_revision = "r0003"
branch_labels = None
depends_on = None

TABLE = "dna_profiles_keys"


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
