"""Each enquiry row commits to the notices it caused: their ids and the digest of what they say.

Rows written before this revision hold NULL here, which their hash leaves out, so every one of
them keeps the hash it was written with and the chain verifies as before."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0003"
down_revision = "e0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("enquiries", sa.Column("sealed", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enquiries") as batch:
        batch.drop_column("sealed")
