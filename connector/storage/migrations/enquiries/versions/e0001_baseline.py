"""Baseline: the hash-chained enquiry log, the notification outbox, digest marks."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("channel"),
    )
    op.create_table(
        "enquiries",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("iss", sa.String(length=16), nullable=False),
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("sub", sa.String(length=256), nullable=True),
        sa.Column("agency_kind", sa.String(length=16), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("case_ref", sa.String(length=256), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("policy_digest", sa.String(length=80), nullable=True),
        sa.Column("checks", sa.Text(), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.Column("hit_refs", sa.Text(), nullable=False),
        sa.Column("answer_digest", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("query_token", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index("ix_enquiries_at", "enquiries", ["at"], unique=False)
    op.create_index("ix_enquiries_peer_at", "enquiries", ["peer", "at"], unique=False)
    op.create_index("uq_enquiries_iss_jti", "enquiries", ["iss", "jti"], unique=True)
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("enquiry", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_attempt_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("leased", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_outbox_channel_due", "outbox", ["channel", "state", "next_attempt_at"], unique=False
    )


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: drop the database instead")
