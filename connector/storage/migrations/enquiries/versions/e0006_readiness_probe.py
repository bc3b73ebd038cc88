"""A one-row table the readiness job rewrites: proof that the enquiry log accepts a write."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0006"
down_revision = "e0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "readiness_probe",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("readiness_probe")
