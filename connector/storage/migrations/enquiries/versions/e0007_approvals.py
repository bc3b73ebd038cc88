"""Approvals: releases held for an operator (the responder's side) and awaited (the querier's)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0007"
down_revision = "e0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("enquiry", sa.String(length=40), nullable=False),
        sa.Column("query_jti", sa.String(length=128), nullable=False),
        sa.Column("query_digest", sa.String(length=64), nullable=False),
        sa.Column("sub", sa.String(length=256), nullable=False),
        sa.Column("agency_kind", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("case_ref", sa.String(length=256), nullable=True),
        sa.Column("policy_digest", sa.String(length=80), nullable=False),
        sa.Column("held", sa.Text(), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("remind_at", sa.Float(), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decision_enquiry", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approvals_state_expires", "approvals", ["state", "expires_at"])
    op.create_table(
        "awaited_releases",
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("approval", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("request", sa.String(length=40), nullable=False),
        sa.Column("agency", sa.String(length=64), nullable=False),
        sa.Column("query_jti", sa.String(length=128), nullable=False),
        sa.Column("query_digest", sa.String(length=64), nullable=False),
        sa.Column("checks", sa.Text(), nullable=False),
        sa.Column("pending", sa.Text(), nullable=False),
        sa.Column("results", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("next_poll_at", sa.Float(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("released_at", sa.Float(), nullable=True),
        sa.Column("release_enquiry", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("peer", "approval"),
    )
    op.create_index("ix_awaited_state_poll", "awaited_releases", ["state", "next_poll_at"])
    op.create_index("ix_awaited_request", "awaited_releases", ["request"])


def downgrade() -> None:
    op.drop_table("awaited_releases")
    op.drop_table("approvals")
