"""Which record references each peer has been given: a check by reference is answered only
for those, so a peer cannot walk a country's sequential record numbers."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "e0002"
down_revision = "e0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disclosed_refs",
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("peer", "ref"),
    )
    # Refs answered before this revision are given to their peers retroactively, from the
    # log's own record of them, so follow-ups of earlier hits keep working.
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT peer, hit_refs, at FROM enquiries WHERE direction = 'in' AND hit_refs <> '[]'"
        )
    )
    seen: dict[tuple[str, str], float] = {}
    for peer, hit_refs, at in rows:
        for ref in json.loads(hit_refs):
            seen.setdefault((peer, ref), at)
    if seen:
        op.bulk_insert(
            sa.table("disclosed_refs", sa.column("peer"), sa.column("ref"), sa.column("first_at")),
            [{"peer": p, "ref": r, "first_at": a} for (p, r), a in seen.items()],
        )


def downgrade() -> None:
    op.drop_table("disclosed_refs")
