"""Baseline: a table per record kind, the full-text index of artworks, the store's secret."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artworks",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("ref_key", sa.String(length=64), nullable=False),
        sa.Column("artist_key", sa.String(length=200), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_artworks_artist_key", "artworks", ["artist_key"], unique=False)
    op.create_index("uq_artworks_natural", "artworks", ["ref_key"], unique=True)
    op.create_table(
        "dna_profiles",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("ref_key", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_dna_profiles_natural", "dna_profiles", ["ref_key"], unique=True)
    op.create_table(
        "fingerprints",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("ref_key", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_fingerprints_natural", "fingerprints", ["ref_key"], unique=True)
    op.create_table(
        "record_meta",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "terrorism_suspects",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("ref_key", sa.String(length=64), nullable=False),
        sa.Column("doc1", sa.String(length=20), nullable=True),
        sa.Column("doc2", sa.String(length=20), nullable=True),
        sa.Column("doc3", sa.String(length=20), nullable=True),
        sa.Column("doc4", sa.String(length=20), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_terrorism_suspects_doc1", "terrorism_suspects", ["doc1"], unique=False)
    op.create_index("ix_terrorism_suspects_doc2", "terrorism_suspects", ["doc2"], unique=False)
    op.create_index("ix_terrorism_suspects_doc3", "terrorism_suspects", ["doc3"], unique=False)
    op.create_index("ix_terrorism_suspects_doc4", "terrorism_suspects", ["doc4"], unique=False)
    op.create_index("uq_terrorism_suspects_natural", "terrorism_suspects", ["ref_key"], unique=True)
    op.create_table(
        "travel_documents",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("number_key", sa.String(length=20), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("doc_class", sa.String(length=1), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_travel_documents_natural", "travel_documents", ["number_key", "country"], unique=True
    )
    op.create_table(
        "vehicles",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("vehicle_key", sa.String(length=24), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=True),
        sa.Column("plate_key", sa.String(length=12), nullable=True),
        sa.Column("plate_country", sa.String(length=2), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_vehicles_plate_key_plate_country",
        "vehicles",
        ["plate_key", "plate_country"],
        unique=False,
    )
    op.create_index("ix_vehicles_vin", "vehicles", ["vin"], unique=False)
    op.create_index("uq_vehicles_natural", "vehicles", ["vehicle_key"], unique=True)
    op.create_table(
        "wanted_persons",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("ref_key", sa.String(length=64), nullable=False),
        sa.Column("doc1", sa.String(length=20), nullable=True),
        sa.Column("doc2", sa.String(length=20), nullable=True),
        sa.Column("doc3", sa.String(length=20), nullable=True),
        sa.Column("doc4", sa.String(length=20), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_wanted_persons_doc1", "wanted_persons", ["doc1"], unique=False)
    op.create_index("ix_wanted_persons_doc2", "wanted_persons", ["doc2"], unique=False)
    op.create_index("ix_wanted_persons_doc3", "wanted_persons", ["doc3"], unique=False)
    op.create_index("ix_wanted_persons_doc4", "wanted_persons", ["doc4"], unique=False)
    op.create_index("uq_wanted_persons_natural", "wanted_persons", ["ref_key"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        # Folded words of title, artist and description; `simple`: no stemming, titles come
        # in every language.
        op.execute(
            "CREATE TABLE artworks_text (id VARCHAR(128) PRIMARY KEY, body TSVECTOR NOT NULL)"
        )
        op.execute("CREATE INDEX ix_artworks_text_body ON artworks_text USING GIN (body)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE artworks_text USING fts5("
            "id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')"
        )


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: drop the database instead")
