"""Full-text indexes of record kinds: SQLite FTS5 or PostgreSQL text search, one interface."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, text

TEXT_CANDIDATES = 2000
"""At most this many any-word postings are ranked for one query."""


def fold(text_: str) -> str:
    """Text as the index keeps it: no accents in any script (Greek tonos included, which
    FTS5's own folding leaves), case folded. Both backends index and search folded text."""
    decomposed = unicodedata.normalize("NFKD", text_)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def table_name(category: str) -> str:
    return f"{category}_text"


class TextIndex(Protocol):
    def create(self, conn: Connection, category: str) -> None:
        """The index's table, for kinds outside the migrated schema (tests)."""

    def index(self, conn: Connection, category: str, rows: Sequence[tuple[str, str]]) -> None:
        """(record id, body) pairs, replacing what the ids had."""

    def unindex(self, conn: Connection, category: str, ids: Sequence[str]) -> None: ...

    def search(
        self, conn: Connection, category: str, words: Sequence[str], limit: int
    ) -> list[tuple[str, float]]:
        """Record ids and a relevance in (0, 1] relative to the best one, best first."""


def for_dialect(name: str) -> TextIndex:
    return PostgresText() if name == "postgresql" else SqliteText()


def _chunks(ids: Sequence[str], size: int = 500) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


class SqliteText:
    """FTS5, ranked by bm25 (negative; the smaller the better). Run on the driver's own
    connection: FTS5 statements are not worth building through SQLAlchemy."""

    def create(self, conn: Connection, category: str) -> None:
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {table_name(category)} USING fts5("
            "id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')"
        )

    def index(self, conn: Connection, category: str, rows: Sequence[tuple[str, str]]) -> None:
        self.unindex(conn, category, [i for i, _ in rows])
        raw = _raw(conn)
        raw.executemany(
            f"INSERT INTO {table_name(category)} (id, body) VALUES (?, ?)",
            [(i, fold(body)) for i, body in rows],
        )

    def unindex(self, conn: Connection, category: str, ids: Sequence[str]) -> None:
        raw = _raw(conn)
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            raw.execute(f"DELETE FROM {table_name(category)} WHERE id IN ({marks})", chunk)

    def search(
        self, conn: Connection, category: str, words: Sequence[str], limit: int
    ) -> list[tuple[str, float]]:
        # Each word quoted: what a peer sends is data, never FTS query syntax.
        quoted = ['"' + fold(w).replace('"', '""') + '"' for w in words]
        table, raw = table_name(category), _raw(conn)
        # All the words first: selective, and ranked in full. Only when that finds nothing,
        # any of them — and then at most TEXT_CANDIDATES postings are ranked (in Python), so
        # a query of common words cannot hold the event loop for the whole index.
        ranked = raw.execute(
            f"SELECT id, bm25({table}) FROM {table} WHERE {table} MATCH ? "
            f"ORDER BY bm25({table}) LIMIT ?",
            (" ".join(quoted), limit),
        ).fetchall()
        if not ranked and len(quoted) > 1:
            candidates = raw.execute(
                f"SELECT id, bm25({table}) FROM {table} WHERE {table} MATCH ? LIMIT ?",
                (" OR ".join(quoted), TEXT_CANDIDATES),
            ).fetchall()
            ranked = sorted(candidates, key=lambda r: r[1])[:limit]
        best = min((r for _, r in ranked), default=-1.0) or -1.0
        return [(i, max(0.01, min(1.0, rank / best))) for i, rank in ranked]


class PostgresText:
    """A tsvector per record under the `simple` configuration (no stemming: titles come in
    every language, and the words are folded by us), GIN-indexed, ranked by ts_rank_cd."""

    def create(self, conn: Connection, category: str) -> None:
        table = table_name(category)
        conn.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(id VARCHAR(128) PRIMARY KEY, body TSVECTOR NOT NULL)"
        )
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS ix_{table}_body ON {table} USING GIN (body)"
        )

    def index(self, conn: Connection, category: str, rows: Sequence[tuple[str, str]]) -> None:
        conn.execute(
            text(
                f"INSERT INTO {table_name(category)} (id, body) "
                "VALUES (:id, to_tsvector('simple', :body)) "
                "ON CONFLICT (id) DO UPDATE SET body = excluded.body"
            ),
            [{"id": i, "body": fold(body)} for i, body in rows],
        )

    def unindex(self, conn: Connection, category: str, ids: Sequence[str]) -> None:
        for chunk in _chunks(ids):
            conn.execute(
                text(f"DELETE FROM {table_name(category)} WHERE id = ANY(:ids)"), {"ids": chunk}
            )

    def search(
        self, conn: Connection, category: str, words: Sequence[str], limit: int
    ) -> list[tuple[str, float]]:
        params: dict[str, Any] = {f"w{n}": fold(w) for n, w in enumerate(words)}
        # plainto_tsquery takes each word as plain text: no query syntax gets through.
        parts = [f"plainto_tsquery('simple', :w{n})" for n in range(len(words))]
        table = table_name(category)
        ranked = self._ranked(conn, table, " && ".join(parts), params, limit)
        if not ranked and len(parts) > 1:
            ranked = self._ranked(conn, table, " || ".join(parts), params, limit)
        best = max((r for _, r in ranked), default=1.0) or 1.0
        return [(i, max(0.01, min(1.0, rank / best))) for i, rank in ranked]

    @staticmethod
    def _ranked(
        conn: Connection, table: str, query: str, params: dict[str, Any], limit: int
    ) -> list[tuple[str, float]]:
        # At most TEXT_CANDIDATES postings are ranked: ts_rank_cd reads each row's vector,
        # and a query of common words must not read them all.
        rows = conn.execute(
            text(
                f"WITH q AS (SELECT {query} AS q), "
                f"c AS (SELECT t.id, t.body FROM {table} t, q WHERE t.body @@ q.q LIMIT :cand) "
                "SELECT c.id, ts_rank_cd(c.body, q.q) AS rank FROM c, q "
                "ORDER BY rank DESC LIMIT :limit"
            ),
            {**params, "cand": TEXT_CANDIDATES, "limit": limit},
        ).all()
        return [(str(r[0]), float(r[1])) for r in rows]


def _raw(conn: Connection) -> Any:
    return conn.connection.dbapi_connection
