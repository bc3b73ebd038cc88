"""Which record came from which row of which source, and where each source's sync stopped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Float, MetaData, String, Table, Text, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def provenance_tables(metadata: MetaData) -> tuple[Table, Table]:
    rows = Table(
        "source_rows",
        metadata,
        Column("source", String(64), primary_key=True),
        Column("source_key", String(512), primary_key=True),
        Column("category", String(32), nullable=False),
        Column("record_id", String(128), nullable=False),
        # The record's natural key (document and country, VIN…): two rows of one
        # source must not claim the same record.
        Column("natural_key", String(300), nullable=False),
        Column("digest", String(64), nullable=False),
    )
    state = Table(
        "source_state",
        metadata,
        Column("source", String(64), primary_key=True),
        Column("cursor", Text),  # the newest change timestamp seen, as text
        Column("synced_at", Float, nullable=False),
    )
    return rows, state


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    record_id: str
    natural_key: str
    digest: str


class Provenance:
    """Reads and writes the two tables on the record store's own connection, so a batch of
    records and the note of where they came from commit together."""

    def __init__(self, conn: Connection, metadata: MetaData) -> None:
        self.conn = conn
        self.rows = metadata.tables["source_rows"]
        self.state = metadata.tables["source_state"]

    def held(self, source: str) -> dict[str, Held]:
        q = select(
            self.rows.c.source_key,
            self.rows.c.record_id,
            self.rows.c.natural_key,
            self.rows.c.digest,
        ).where(self.rows.c.source == source)
        return {
            k: Held(record_id=r, natural_key=n, digest=d) for k, r, n, d in self.conn.execute(q)
        }

    def put(self, source: str, category: str, entries: Mapping[str, Held]) -> None:
        if not entries:
            return
        table = self.rows
        insert = (
            pg_insert(table) if self.conn.dialect.name == "postgresql" else sqlite_insert(table)
        )
        stmt = insert.on_conflict_do_update(
            index_elements=["source", "source_key"],
            set_={
                "record_id": insert.excluded.record_id,
                "digest": insert.excluded.digest,
                "natural_key": insert.excluded.natural_key,
                "category": insert.excluded.category,
            },
        )
        self.conn.execute(
            stmt,
            [
                {
                    "source": source,
                    "source_key": k,
                    "category": category,
                    "record_id": h.record_id,
                    "natural_key": h.natural_key,
                    "digest": h.digest,
                }
                for k, h in entries.items()
            ],
        )

    def forget(self, source: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 500):
            self.conn.execute(
                delete(self.rows).where(
                    self.rows.c.source == source,
                    self.rows.c.source_key.in_(keys[start : start + 500]),
                )
            )

    def cursor(self, source: str) -> str | None:
        return self.conn.execute(
            select(self.state.c.cursor).where(self.state.c.source == source)
        ).scalar()

    def mark(self, source: str, cursor: str | None, at: float) -> None:
        self.conn.execute(delete(self.state).where(self.state.c.source == source))
        self.conn.execute(self.state.insert().values(source=source, cursor=cursor, synced_at=at))
