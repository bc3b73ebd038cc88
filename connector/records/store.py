"""The record store: national records in SQL (SQLite by default), searched by indexed keys only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    MetaData,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from connector.errors import ConfigError
from connector.records.kinds.base import KeyQuery, Kind, Match, Record, TextQuery
from connector.records.kinds.registry import KINDS
from connector.sqlitepragmas import on_connect
from connector.vocabulary import Category


def table_for(kind: Kind, metadata: MetaData) -> Table:
    """id, the kind's key columns, and the record's fields as JSON."""
    name = kind.category.value
    columns: list[Any] = [Column("id", String(128), primary_key=True)]
    columns += [Column(c.name, String(c.length), nullable=c.nullable) for c in kind.key_columns]
    columns.append(Column("data", Text, nullable=False))
    columns.append(Index(f"uq_{name}_natural", *kind.natural_key, unique=True))
    columns += [Index(f"ix_{name}_{'_'.join(cols)}", *cols) for cols in kind.indexes
                if tuple(cols) != tuple(kind.natural_key[:len(cols)])]
    return Table(name, metadata, *columns)


def keys_table_for(kind: Kind, metadata: MetaData) -> Table:
    """A keyed kind's search keys: one row per (key, record), the key as a 64-bit hash so
    the index stays small whatever the keys look like."""
    name = f"{kind.category.value}_keys"
    return Table(name, metadata,
                 Column("key", BigInteger, nullable=False),
                 Column("record_id", String(128), nullable=False),
                 Index(f"ix_{name}_key", "key"),
                 Index(f"ix_{name}_record", "record_id"))


def key_hash(key: str) -> int:
    """A search key as a signed 64-bit integer (BIGINT on every database)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big",
                          signed=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertCount:
    inserted: int = 0
    updated: int = 0


def make_engine(url: str) -> Engine:
    engine = create_engine(url, hide_parameters=True)  # no record data in error messages
    if engine.dialect.name == "sqlite":
        # Records are a copy of the national database, re-importable: no fsync per commit.
        event.listen(engine, "connect", on_connect(synchronous="NORMAL", busy_ms=5_000))
    return engine


class RecordStore:
    """National records of every kind. SQLite queries run in the event loop: an indexed
    lookup takes microseconds, less than handing it to a thread would cost."""

    def __init__(self, engine: Engine, kinds: Mapping[Category, Kind] = KINDS) -> None:
        self.engine = engine
        self.kinds = kinds
        # Tables belong to this store's kinds, not to the module: two stores with different
        # kinds (a test's made-up one, say) never share a definition.
        self.metadata = MetaData()
        self.tables = {c: table_for(k, self.metadata) for c, k in kinds.items()}
        self.key_tables = {c: keys_table_for(k, self.metadata) for c, k in kinds.items()
                           if k.keyed}
        self._meta = Table("record_meta", self.metadata,
                           Column("key", String(32), primary_key=True),
                           Column("value", String(128), nullable=False))
        self._secret = b""
        self._conn = engine.connect()
        self._raw: Any = None
        if engine.dialect.name == "sqlite":
            self._raw = self._conn.connection.dbapi_connection
        self._named = sqlite_dialect(paramstyle="named")
        # Lookup statements by (category, columns), built and compiled once: constructing a
        # statement costs more than the indexed lookup it runs.
        self._lookups: dict[tuple[Category, tuple[str, ...]],
                            tuple[Select[Any], str, dict[str, Any]]] = {}
        self._key_lookups: dict[Category, tuple[Select[Any], str, dict[str, Any]]] = {}

    @classmethod
    def open(cls, url: str) -> RecordStore:
        try:
            store = cls(make_engine(url))
            store.create_schema()
        except SQLAlchemyError as exc:
            raise ConfigError(f"cannot open the records database {url}: "
                              f"{getattr(exc, 'orig', None) or exc}") from exc
        return store

    def create_schema(self) -> None:
        self.metadata.create_all(self._conn)
        secret = self._conn.execute(select(self._meta.c.value).where(
            self._meta.c.key == "ref_secret")).scalar()
        if secret is None:
            secret = secrets.token_hex(32)
            self._conn.execute(self._meta.insert().values(key="ref_secret", value=secret))
        self._secret = bytes.fromhex(secret)
        for category, kind in self.kinds.items():
            if kind.text_fields and self._raw is not None:
                # FTS5 keeps its own copy of the words; the id ties it to the record row.
                self._conn.exec_driver_sql(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {_fts(category)} USING fts5("
                    "id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')")
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()
        self.engine.dispose()

    def bulk_mode(self) -> None:
        """For an import: a page cache large enough to hold the indexes being written, and
        fewer checkpoints. Only this connection (an import's own) is affected."""
        if self._raw is not None:
            self._raw.execute("PRAGMA cache_size=-262144")  # 256 MiB
            self._raw.execute("PRAGMA wal_autocheckpoint=100000")

    def kind(self, category: Category) -> Kind | None:
        return self.kinds.get(category)

    # --- writing (imports) -------------------------------------------------------------------

    def upsert(self, category: Category, records: Sequence[Record]) -> UpsertCount:
        """Insert or update by the kind's natural key; one transaction for the batch."""
        if not records:
            return UpsertCount()
        kind, table = self.kinds[category], self.tables[category]
        records = [r if r.id_given else replace(r, id=self.opaque_id(category, kind, r))
                   for r in records]
        # Later rows of a batch win, as they would row by row.
        unique = {tuple(r.keys[k] for k in kind.natural_key): r for r in records}
        first = kind.natural_key[0]
        existing: set[tuple[Any, ...]] = set()
        keys = list(unique)
        for start in range(0, len(keys), 400):
            chunk = keys[start:start + 400]
            q = select(*(table.c[k] for k in kind.natural_key)).where(
                table.c[first].in_({k[0] for k in chunk}))
            existing.update(tuple(r) for r in self._conn.execute(q) if tuple(r) in unique)
        rows = [{"id": r.id, **r.keys, "data": orjson.dumps(dict(r.fields)).decode()}
                for r in unique.values()]
        stmt = sqlite_insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(kind.natural_key),
            set_={c.name: stmt.excluded[c.name] for c in table.columns
                  if c.name not in kind.natural_key and c.name != "id"},
        )
        self._conn.execute(stmt, rows)
        if kind.text_fields and self._raw is not None:
            self._index_text(category, kind, list(unique.values()))
        self._index_keys(category, kind, list(unique.values()))
        self._conn.commit()
        # A key given twice in one batch is an update of the first, as it would be apart.
        return UpsertCount(inserted=len(unique) - len(existing),
                           updated=len(existing) + len(records) - len(unique))

    def opaque_id(self, category: Category, kind: Kind, record: Record) -> str:
        """A stable id that tells nothing: a keyed hash of the natural key, with this store's
        own secret, so nobody can test guesses against it."""
        return self.opaque_id_for(category, [str(record.keys[k]) for k in kind.natural_key])

    def opaque_id_for(self, category: Category, natural_key: Sequence[str]) -> str:
        natural = "\x1f".join(natural_key)
        mac = hmac.new(self._secret, f"{category.value}\x1e{natural}".encode(), "sha256")
        return "r" + base64.b32encode(mac.digest()[:15]).decode().lower()

    def remove_except_keys(self, category: Category, keep: set[tuple[Any, ...]], *,
                           max_share: float | None = None) -> int | None:
        """Remove every record whose natural key is not in `keep` (import --replace); None,
        removing nothing, when that would be more than `max_share` of the category."""
        kind, table = self.kinds[category], self.tables[category]
        cols = [table.c[k] for k in kind.natural_key]
        rows = list(self._conn.execute(select(table.c.id, *cols)))
        gone = [row[0] for row in rows if tuple(row[1:]) not in keep]
        if max_share is not None and gone and len(gone) > max_share * len(rows):
            return None
        for start in range(0, len(gone), 500):
            self._conn.execute(delete(table).where(table.c.id.in_(gone[start:start + 500])))
        self._unindex_text(category, gone)
        self._unindex_keys(category, gone)
        self._conn.commit()
        return len(gone)

    def remove(self, category: Category, record_id: str) -> bool:
        table = self.tables.get(category)
        if table is None:
            return False
        result = self._conn.execute(delete(table).where(table.c.id == record_id))
        self._unindex_text(category, [record_id])
        self._unindex_keys(category, [record_id])
        self._conn.commit()
        return bool(result.rowcount)

    def remove_except(self, category: Category, keep: set[str]) -> int:
        """Remove every record of the category whose id is not in `keep` (import --replace)."""
        table = self.tables[category]
        gone = [i for (i,) in self._conn.execute(select(table.c.id)) if i not in keep]
        for start in range(0, len(gone), 500):
            self._conn.execute(delete(table).where(table.c.id.in_(gone[start:start + 500])))
        self._unindex_text(category, gone)
        self._unindex_keys(category, gone)
        self._conn.commit()
        return len(gone)

    def _index_keys(self, category: Category, kind: Kind, records: Sequence[Record]) -> None:
        """A record's keys are replaced whole on every upsert: what a name no longer says
        must no longer find it."""
        table = self.key_tables.get(category)
        if table is None:
            return
        self._unindex_keys(category, [r.id for r in records])
        rows = [{"key": key_hash(k), "record_id": r.id}
                for r in records for k in dict.fromkeys(kind.search_keys(r))]
        if rows:
            self._conn.execute(table.insert(), rows)

    def _unindex_keys(self, category: Category, ids: Sequence[str]) -> None:
        table = self.key_tables.get(category)
        if table is None:
            return
        for start in range(0, len(ids), 500):
            self._conn.execute(delete(table).where(
                table.c.record_id.in_(list(ids[start:start + 500]))))

    # --- reading (answering) -----------------------------------------------------------------

    async def search(self, category: Category, criteria: Any, limit: int) -> list[Match]:
        return self.search_now(category, criteria, limit)

    def search_now(self, category: Category, criteria: Any, limit: int) -> list[Match]:
        """Candidates by indexed equality lookups only, scored by the kind, best first."""
        kind = self.kinds[category]
        seen: dict[str, Match] = {}
        for lookup in kind.lookups(criteria):
            found: list[tuple[Record, float]]
            if isinstance(lookup, TextQuery):
                found = self._text_search(category, kind, lookup, limit)
            elif isinstance(lookup, KeyQuery):
                found = [(r, 1.0) for r in self._key_search(category, kind, lookup)]
            else:
                found = [(r, 1.0) for r in self._lookup(category, kind, lookup, limit)]
            for record, relevance in found:
                if record.id in seen:
                    continue
                match = kind.score(criteria, record)
                if match is None:
                    continue
                if relevance != 1.0:  # text matches only: replace() costs more than a lookup
                    match = replace(match, score=round(match.score * relevance, 4))
                seen[record.id] = match
        if len(seen) <= 1:
            return list(seen.values())
        return sorted(seen.values(), key=lambda m: -m.score)[:limit]

    def _index_text(self, category: Category, kind: Kind, records: Sequence[Record]) -> None:
        self._unindex_text(category, [r.id for r in records])
        self._raw.executemany(
            f"INSERT INTO {_fts(category)} (id, body) VALUES (?, ?)",
            [(r.id, fold(_text_body(kind, r))) for r in records])

    def _unindex_text(self, category: Category, ids: Sequence[str]) -> None:
        kind = self.kinds.get(category)
        if kind is None or not kind.text_fields or self._raw is None:
            return
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            self._raw.execute(f"DELETE FROM {_fts(category)} WHERE id IN ({marks})", chunk)

    def _text_search(self, category: Category, kind: Kind, query: TextQuery,
                     limit: int) -> list[tuple[Record, float]]:
        """Any of the words, ranked by bm25 (records with more of them, rarer ones, first);
        the rank becomes a relevance in (0, 1] relative to the best hit. The kind's score
        then says how much of the query a record really matches."""
        words = [fold(w) for w in query.words if w.strip()]
        if not words or self._raw is None:
            return []
        # Each word quoted: what a peer sends is data, never FTS query syntax.
        quoted = ['"' + w.replace('"', '""') + '"' for w in words]
        table = _fts(category)
        # All the words first: selective, and ranked in full. Only when that finds nothing,
        # any of them — and then at most TEXT_CANDIDATES postings are ranked (in Python), so
        # a query of common words cannot hold the event loop for the whole index.
        ranked = self._raw.execute(
            f"SELECT id, bm25({table}) FROM {table} WHERE {table} MATCH ? "
            f"ORDER BY bm25({table}) LIMIT ?", (" ".join(quoted), limit)).fetchall()
        if not ranked and len(quoted) > 1:
            candidates = self._raw.execute(
                f"SELECT id, bm25({table}) FROM {table} WHERE {table} MATCH ? LIMIT ?",
                (" OR ".join(quoted), TEXT_CANDIDATES)).fetchall()
            ranked = sorted(candidates, key=lambda r: r[1])[:limit]
        out = []
        best = min((r for _, r in ranked), default=-1.0) or -1.0
        for record_id, rank in ranked:
            record = self.get(category, record_id)
            if record is not None:
                out.append((record, max(0.01, min(1.0, rank / best))))
        return out

    def _key_search(self, category: Category, kind: Kind, query: KeyQuery) -> list[Record]:
        """The records sharing the most (rarity-weighted) keys with the query. Each key reads
        at most per_key + 1 index entries, so a frequent surname costs no more than a rare
        one; it is only counted when nothing rarer found a record."""
        table = self.key_tables.get(category)
        if table is None or not query.keys:
            return []
        stmt, sql, fixed = self._key_statement(category)
        weights: dict[str, float] = {}
        common: list[list[str]] = []
        for key in query.keys:
            params = {"key": key_hash(key), "limit": query.per_key + 1}
            if self._raw is not None:
                ids = [r[0] for r in self._raw.execute(sql, {**fixed, **params})]
            else:
                ids = [r[0] for r in self._conn.execute(stmt, params)]
            if len(ids) > query.per_key:
                common.append(ids[:query.per_key])
                continue
            for record_id in ids:
                weights[record_id] = weights.get(record_id, 0.0) + 1.0 / len(ids)
        if not weights:
            for ids in common:
                for record_id in ids:
                    weights[record_id] = weights.get(record_id, 0.0) + 1.0 / query.per_key
        chosen = sorted(weights, key=lambda i: -weights[i])[:query.candidates]
        return self.get_many(category, chosen)

    def _key_statement(self, category: Category) -> tuple[Select[Any], str, dict[str, Any]]:
        found = self._key_lookups.get(category)
        if found is None:
            table = self.key_tables[category]
            stmt = select(table.c.record_id).where(table.c.key == bindparam("key")) \
                .limit(bindparam("limit"))
            compiled = stmt.compile(dialect=self._named)
            found = (stmt, str(compiled), dict(compiled.params))
            self._key_lookups[category] = found
        return found

    def get_many(self, category: Category, ids: Sequence[str]) -> list[Record]:
        """Records by id, in the order asked (ids not held are left out)."""
        table, kind = self.tables[category], self.kinds[category]
        found: dict[str, Record] = {}
        for start in range(0, len(ids), 500):
            rows = self._conn.execute(select(table).where(
                table.c.id.in_(list(ids[start:start + 500]))))
            for row in rows:
                record = _record(category, kind, dict(row._mapping))
                found[record.id] = record
        return [found[i] for i in ids if i in found]

    def _lookup(self, category: Category, kind: Kind, lookup: Mapping[str, str],
                limit: int) -> list[Record]:
        shape = tuple(sorted(lookup))
        stmt, sql, fixed = self._statement(category, shape)
        params = {**lookup, "limit": limit}
        if self._raw is not None:
            rows = self._raw.execute(sql, {**fixed, **params}).fetchall()
        else:
            rows = [tuple(r) for r in self._conn.execute(stmt, params)]
        names = [c.name for c in stmt.selected_columns]
        return [_record(category, kind, dict(zip(names, r, strict=True))) for r in rows]

    def _statement(self, category: Category, shape: tuple[str, ...]
                   ) -> tuple[Select[Any], str, dict[str, Any]]:
        found = self._lookups.get((category, shape))
        if found is None:
            table = self.tables[category]
            stmt = select(table).where(and_(*(table.c[c] == bindparam(c) for c in shape))) \
                .limit(bindparam("limit"))
            compiled = stmt.compile(dialect=self._named)
            # Values the dialect adds itself (SQLite's OFFSET 0) travel as parameters too.
            found = (stmt, str(compiled), dict(compiled.params))
            self._lookups[(category, shape)] = found
        return found

    def get(self, category: Category, record_id: str) -> Record | None:
        table, kind = self.tables.get(category), self.kinds.get(category)
        if table is None or kind is None:
            return None
        row = self._conn.execute(select(table).where(table.c.id == record_id)).first()
        return None if row is None else _record(category, kind, dict(row._mapping))

    def count(self, category: Category) -> int:
        table = self.tables.get(category)
        if table is None:
            return 0
        return int(self._conn.execute(select(func.count()).select_from(table)).scalar_one())

    def iter_ids(self, category: Category) -> Iterable[str]:
        table = self.tables.get(category)
        if table is not None:
            yield from (r.id for r in self._conn.execute(select(table.c.id)))


TEXT_CANDIDATES = 2000


def fold(text: str) -> str:
    """Text as the full-text index keeps it: no accents in any script (Greek tonos included,
    which FTS5's own folding leaves), case folded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _fts(category: Category) -> str:
    return f"{category.value}_text"


def _text_body(kind: Kind, record: Record) -> str:
    parts: list[str] = []
    for name in kind.text_fields:
        value = record.fields.get(name)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list | tuple):
            parts += [v for v in value if isinstance(v, str)]
        elif isinstance(value, dict):  # e.g. a title in several languages
            parts += [v for v in value.values() if isinstance(v, str)]
    return "\n".join(parts)


def _record(category: Category, kind: Kind, row: dict[str, Any]) -> Record:
    return Record(id=row["id"], category=category,
                  keys={c.name: row[c.name] for c in kind.key_columns},
                  fields=orjson.loads(row["data"]))


__all__ = ["RecordStore", "UpsertCount", "key_hash", "keys_table_for", "make_engine",
           "table_for"]
