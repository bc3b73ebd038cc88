"""The record store: national records in SQLite or PostgreSQL, searched by indexed keys only."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
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
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connector.errors import ConfigError
from connector.records.kinds.base import KeyClass, KeyQuery, Kind, Match, Record, TextQuery
from connector.records.kinds.registry import KINDS
from connector.records.provenance import Provenance, provenance_tables
from connector.records.textindex import fold, for_dialect
from connector.storage.pgpool import open_pool
from connector.storage.sqlite import create_private, on_connect
from connector.storage.urls import async_url, redacted, sqlite_file, sync_url
from connector.vocabulary import Category, current_names


def table_for(kind: Kind, metadata: MetaData) -> Table:
    """id, the kind's key columns, and the record's fields as JSON."""
    name = kind.category.value
    columns: list[Any] = [Column("id", String(128), primary_key=True)]
    columns += [Column(c.name, String(c.length), nullable=c.nullable) for c in kind.key_columns]
    columns.append(Column("data", Text, nullable=False))
    columns.append(Index(f"uq_{name}_natural", *kind.natural_key, unique=True))
    columns += [
        Index(f"ix_{name}_{'_'.join(cols)}", *cols)
        for cols in kind.indexes
        if tuple(cols) != tuple(kind.natural_key[: len(cols)])
    ]
    return Table(name, metadata, *columns)


def keys_table_for(kind: Kind, metadata: MetaData) -> Table:
    """A keyed kind's search keys: one row per (key, record), the key as a 64-bit hash so
    the index stays small whatever the keys look like."""
    name = f"{kind.category.value}_keys"
    # A kind that reads every holder of a key (`KeyQuery.at_least`) has the record id in the
    # key's index too, so that those reads never leave the index for the table.
    by_key = ("key", "record_id") if kind.exhaustive_keys else ("key",)
    return Table(
        name,
        metadata,
        Column("key", BigInteger, nullable=False),
        Column("record_id", String(128), nullable=False),
        Index(f"ix_{name}_key", *by_key),
        Index(f"ix_{name}_record", "record_id"),
    )


def key_hash(key: str) -> int:
    """A search key as a signed 64-bit integer (BIGINT on every database)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def meta_table(metadata: MetaData) -> Table:
    """Small settings of the store itself: the secret behind opaque record ids."""
    return Table(
        "record_meta",
        metadata,
        Column("key", String(32), primary_key=True),
        Column("value", String(128), nullable=False),
    )


def records_metadata(kinds: Mapping[Category, Kind] = KINDS) -> MetaData:
    """The tables of these kinds (full-text indexes aside: they differ per backend)."""
    metadata = MetaData()
    for kind in kinds.values():
        table_for(kind, metadata)
        if kind.keyed:
            keys_table_for(kind, metadata)
    meta_table(metadata)
    provenance_tables(metadata)
    return metadata


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertCount:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0  # held already exactly as given: nothing was written


def make_engine(url: str) -> Engine:
    engine = create_engine(sync_url(url), hide_parameters=True)  # no record data in errors
    if engine.dialect.name == "sqlite":
        create_private(sqlite_file(url))
        # Records are a copy of the national database, re-importable: no fsync per commit.
        event.listen(engine, "connect", on_connect(synchronous="NORMAL", busy_ms=5_000))
    return engine


class RecordStore:
    """National records of every kind.

    SQLite queries run in the event loop: an indexed lookup takes microseconds, less than
    handing it to a thread would cost. On PostgreSQL a node's searches go through asyncpg
    (a pool of connections, the same statements); imports and command-line tools use a
    plain connection (psycopg)."""

    def __init__(
        self,
        engine: Engine,
        kinds: Mapping[Category, Kind] = KINDS,
        *,
        async_engine: AsyncEngine | None = None,
    ) -> None:
        self.engine = engine
        self.kinds = kinds
        # Tables belong to this store's kinds, not to the module: two stores with different
        # kinds (a test's made-up one, say) never share a definition.
        self.metadata = MetaData()
        self.tables = {c: table_for(k, self.metadata) for c, k in kinds.items()}
        self.key_tables = {c: keys_table_for(k, self.metadata) for c, k in kinds.items() if k.keyed}
        self._meta = meta_table(self.metadata)
        provenance_tables(self.metadata)
        self._secret = b""
        self._conn = engine.connect()
        self._text = for_dialect(engine.dialect.name)
        self._async = async_engine
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._pg_sql: dict[tuple[Category, tuple[str, ...]], str] = {}
        self._key_lookups: dict[Category, tuple[Select[Any], str, dict[str, Any]]] = {}
        self._upserts: dict[str, tuple[list[str], str]] = {}
        self._raw: Any = None
        if engine.dialect.name == "sqlite":
            self._raw = self._conn.connection.dbapi_connection
        self._named = sqlite_dialect(paramstyle="named")
        # Lookup statements by (category, columns), built and compiled once: constructing a
        # statement costs more than the indexed lookup it runs.
        self._lookups: dict[
            tuple[Category, tuple[str, ...]],
            tuple[Select[Any], str, dict[str, Any], tuple[str, ...]],
        ] = {}

    @classmethod
    def open(cls, url: str, *, serving: bool = False) -> RecordStore:
        """The store of the product's kinds, on a schema this version knows (a new database
        is created). `serving`: a node's, searching through asyncpg on PostgreSQL."""
        from connector.storage.migrations import Schema, ensure

        try:
            engine = make_engine(url)
            aengine = None
            if serving and engine.dialect.name == "postgresql":
                aengine = create_async_engine(
                    async_url(url), hide_parameters=True, pool_size=8, max_overflow=8
                )
            store = cls(engine, async_engine=aengine)
            with store._conn.begin():
                ensure(Schema.RECORDS, store._conn, what=f"records database {redacted(url)}")
            store.load_secret()
        except SQLAlchemyError as exc:
            raise ConfigError(
                f"cannot open the records database {redacted(url)}: "
                f"{getattr(exc, 'orig', None) or exc}"
            ) from exc
        return store

    async def ping(self) -> None:
        """One read of the store's own table, the way a check reaches the database (the
        asyncpg side on PostgreSQL): what readiness asks of it."""
        q = select(self._meta.c.key).limit(1)
        if self._async is not None:
            async with self._async.connect() as conn:
                await conn.execute(q)
        elif self._raw is not None:
            # SQLite's serving reads go straight to the driver, outside any transaction.
            self._raw.execute(f"SELECT key FROM {self._meta.name} LIMIT 1").fetchall()
        else:
            self._conn.execute(q).fetchall()
            self._conn.rollback()

    def create_schema(self) -> None:
        """Tables straight from the kinds, without migrations: for stores of kinds the
        product does not ship (tests). The product's own schema is made by migrations."""
        self.metadata.create_all(self._conn)
        for category, kind in self.kinds.items():
            if kind.text_fields:
                self._text.create(self._conn, category.value)
        self._conn.commit()
        self.load_secret()

    def load_secret(self) -> None:
        secret = self._conn.execute(
            select(self._meta.c.value).where(self._meta.c.key == "ref_secret")
        ).scalar()
        if secret is None:
            secret = secrets.token_hex(32)
            self._conn.execute(self._meta.insert().values(key="ref_secret", value=secret))
        self._conn.commit()
        self._secret = bytes.fromhex(secret)
        for category in self.key_tables:
            # An empty category is keyed by this version from its first record on.
            if self._keys_version(category) is None and not self.count(category):
                self._set_keys_version(category)
        self._conn.commit()

    def _keys_version(self, category: Category) -> str | None:
        return self._conn.execute(
            select(self._meta.c.value).where(self._meta.c.key == f"keys:{category.value}")
        ).scalar()

    def _set_keys_version(self, category: Category) -> None:
        self._conn.execute(delete(self._meta).where(self._meta.c.key == f"keys:{category.value}"))
        self._conn.execute(
            self._meta.insert().values(
                key=f"keys:{category.value}", value=self.kinds[category].keys_version or "-"
            )
        )

    def keys_outdated(self) -> list[Category]:
        """Keyed categories whose search keys another version made (or none made): name
        search finds far fewer there until `db upgrade` or `records reindex`."""
        return [
            c
            for c in self.key_tables
            if self._keys_version(c) != (self.kinds[c].keys_version or "-")
            or (self.count(c) and not self.key_count(c))
        ]

    def close(self) -> None:
        self._conn.close()
        self.engine.dispose()

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._async is not None:
            await self._async.dispose()
        self.close()

    def bulk_mode(self) -> None:
        """For an import: a page cache large enough to hold the indexes being written, and
        fewer checkpoints. Only this connection (an import's own) is affected."""
        if self._raw is not None:
            self._raw.execute("PRAGMA cache_size=-262144")  # 256 MiB
            self._raw.execute("PRAGMA wal_autocheckpoint=100000")
        elif self.engine.dialect.name == "postgresql":
            # Records are re-importable from their source: a lost tail after a crash is
            # re-imported, so an import's commits need not wait for the WAL flush.
            self._conn.exec_driver_sql("SET synchronous_commit = off")

    def provenance(self) -> Provenance:
        """Where records from national databases came from, on this store's connection."""
        return Provenance(self._conn, self.metadata)

    def commit(self) -> None:
        self._conn.commit()

    def kind(self, category: Category) -> Kind | None:
        return self.kinds.get(category)

    # --- writing (imports) -------------------------------------------------------------------

    def upsert(self, category: Category, records: Sequence[Record]) -> UpsertCount:
        """Insert or update by the kind's natural key; one transaction for the batch."""
        if not records:
            return UpsertCount()
        kind, table = self.kinds[category], self.tables[category]
        records = [r if r.id_given else self.with_opaque_id(category, kind, r) for r in records]
        # Later rows of a batch win, as they would row by row.
        unique = {tuple(r.keys[k] for k in kind.natural_key): r for r in records}
        rows = [
            {"id": r.id, **r.keys, "data": orjson.dumps(dict(r.fields)).decode()}
            for r in unique.values()
        ]
        if self.engine.dialect.name == "postgresql":
            existing, unchanged = self._copy_upsert(kind, table, rows)
        else:
            existing, unchanged = self._sqlite_upsert(kind, table, unique, rows)
        if kind.text_fields:
            self._text.index(
                self._conn, category.value, [(r.id, _text_body(kind, r)) for r in unique.values()]
            )
        self._index_keys(category, kind, list(unique.values()))
        self._conn.commit()
        # A key given twice in one batch is an update of the first, as it would be apart.
        return UpsertCount(
            inserted=len(unique) - existing,
            updated=existing - unchanged + len(records) - len(unique),
            unchanged=unchanged,
        )

    def _sqlite_upsert(
        self,
        kind: Kind,
        table: Table,
        unique: Mapping[tuple[Any, ...], Record],
        rows: Sequence[Mapping[str, Any]],
    ) -> tuple[int, int]:
        """SQLite: the statements as the driver takes them, built once per kind, the rows as
        tuples: SQLAlchemy's executemany processes every parameter of every row again, which
        cost an import as much as SQLite's own work. Returns how many rows were held already,
        and how many of those were held exactly as given (left unwritten)."""
        found = self._upserts.get(table.name)
        if found is None:
            names = [c.name for c in table.columns]
            natural = list(kind.natural_key)
            changing = [n for n in names if n not in natural and n != "id"]
            updates = ", ".join(f"{n} = excluded.{n}" for n in changing)
            # A row held exactly as given is not written: an identical re-import is counted
            # unchanged, and costs no page writes.
            differs = " OR ".join(f"{table.name}.{n} IS NOT excluded.{n}" for n in changing)
            found = (
                names,
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "
                f"({', '.join('?' * len(names))}) ON CONFLICT "
                f"({', '.join(natural)}) DO UPDATE SET {updates} WHERE {differs}",
            )
            self._upserts[table.name] = found
        names, sql = found
        if not self._conn.in_transaction():
            # The driver's connection is used directly: without this SQLAlchemy would not
            # know a transaction is open, and its commit() would commit nothing.
            self._conn.begin()
        existing = self._existing_raw(kind, table, unique)
        before = self._raw.total_changes
        self._raw.executemany(sql, [tuple(row[n] for n in names) for row in rows])
        return existing, len(rows) - (self._raw.total_changes - before)

    def _existing_raw(
        self, kind: Kind, table: Table, unique: Mapping[tuple[Any, ...], Record]
    ) -> int:
        first, natural = kind.natural_key[0], ", ".join(kind.natural_key)
        keys, existing = list(unique), 0
        for start in range(0, len(keys), 400):
            chunk = list({k[0] for k in keys[start : start + 400]})
            marks = ", ".join("?" * len(chunk))
            existing += sum(
                1
                for r in self._raw.execute(
                    f"SELECT {natural} FROM {table.name} WHERE {first} IN ({marks})", chunk
                )
                if tuple(r) in unique
            )
        return existing

    def _copy_upsert(
        self, kind: Kind, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[int, int]:
        """PostgreSQL: COPY the batch into a staging table, then one INSERT … ON CONFLICT from
        it. Building a statement per row, or one giant statement, costs the client far more
        than the server's work. Returns how many rows were held already (xmax is 0 for a row
        the statement inserted; a row held exactly as given is not written nor returned), and
        how many of those were held exactly as given."""
        name, names = table.name, [c.name for c in table.columns]
        stage = f"stage_{name}"
        if not self._conn.in_transaction():
            # The driver's cursor is used directly: without this, SQLAlchemy would not know
            # a transaction is open, and its commit() would commit nothing.
            self._conn.begin()
        cur = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            f"(LIKE {name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY {stage} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[n] for n in names])
        changing = [n for n in names if n not in kind.natural_key and n != "id"]
        updates = ", ".join(f"{n} = excluded.{n}" for n in changing)
        held = ", ".join(f"{name}.{n}" for n in changing)
        given = ", ".join(f"excluded.{n}" for n in changing)
        cur.execute(
            f"INSERT INTO {name} ({', '.join(names)}) "
            f"SELECT {', '.join(names)} FROM {stage} "
            f"ON CONFLICT ({', '.join(kind.natural_key)}) DO UPDATE SET {updates} "
            f"WHERE ({held}) IS DISTINCT FROM ({given}) "
            "RETURNING (xmax = 0)"
        )
        written = cur.fetchall()
        inserted = sum(1 for (was_inserted,) in written if was_inserted)
        unchanged = len(rows) - len(written)
        cur.execute(f"TRUNCATE {stage}")
        return len(rows) - inserted, unchanged

    def with_opaque_id(self, category: Category, kind: Kind, record: Record) -> Record:
        # Built directly: dataclasses.replace costs more than the keyed hash.
        return Record(
            id=self.opaque_id(category, kind, record),
            category=record.category,
            keys=record.keys,
            fields=record.fields,
            id_given=False,
        )

    def opaque_id(self, category: Category, kind: Kind, record: Record) -> str:
        """A stable id that tells nothing: a keyed hash of the natural key, with this store's
        own secret, so nobody can test guesses against it."""
        return self.opaque_id_for(category, [str(record.keys[k]) for k in kind.natural_key])

    def opaque_id_for(self, category: Category, natural_key: Sequence[str]) -> str:
        natural = "\x1f".join(natural_key)
        mac = hmac.new(self._secret, f"{category.value}\x1e{natural}".encode(), "sha256")
        return "r" + _b32(mac.digest()[:15])

    def remove_except_keys(
        self, category: Category, keep: set[tuple[Any, ...]], *, max_share: float | None = None
    ) -> int | None:
        """Remove every record whose natural key is not in `keep` (import --replace); None,
        removing nothing, when that would be more than `max_share` of the category."""
        kind, table = self.kinds[category], self.tables[category]
        cols = [table.c[k] for k in kind.natural_key]
        rows = list(self._conn.execute(select(table.c.id, *cols)))
        gone = [row[0] for row in rows if tuple(row[1:]) not in keep]
        if max_share is not None and gone and len(gone) > max_share * len(rows):
            self._conn.rollback()
            return None
        self._delete(category, gone)
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

    def remove_ids(self, category: Category, ids: Sequence[str]) -> int:
        """Remove these records (a sync's deletions at the source); how many there were."""
        removed = self._delete(category, ids)
        self._conn.commit()
        return removed

    def _delete(self, category: Category, ids: Sequence[str]) -> int:
        table, removed = self.tables[category], 0
        for start in range(0, len(ids), 500):
            result = self._conn.execute(
                delete(table).where(table.c.id.in_(ids[start : start + 500]))
            )
            removed += result.rowcount or 0
        self._unindex_text(category, ids)
        self._unindex_keys(category, ids)
        return removed

    def remove_except(self, category: Category, keep: set[str]) -> int:
        """Remove every record of the category whose id is not in `keep` (import --replace)."""
        table = self.tables[category]
        gone = [i for (i,) in self._conn.execute(select(table.c.id)) if i not in keep]
        self._delete(category, gone)
        self._conn.commit()
        return len(gone)

    def _index_keys(self, category: Category, kind: Kind, records: Sequence[Record]) -> None:
        """A record's keys are replaced whole on every upsert: what a name no longer says
        must no longer find it."""
        table = self.key_tables.get(category)
        if table is None:
            return
        self._unindex_keys(category, [r.id for r in records])
        rows = [(key_hash(k), r.id) for r in records for k in dict.fromkeys(kind.search_keys(r))]
        if not rows:
            return
        if self.engine.dialect.name == "postgresql":
            # A dozen keys a person: COPY, as for the records themselves.
            cur = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            with cur.copy(f"COPY {table.name} (key, record_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            self._conn.execute(table.insert(), [{"key": k, "record_id": i} for k, i in rows])

    def rebuild_keys(self, category: Category, *, batch: int = 5_000) -> int:
        """Every record's search keys made anew from its fields (after an upgrade that
        changed how keys are made, or added them); how many records were keyed."""
        table, keys = self.tables[category], self.key_tables.get(category)
        if keys is None:
            return 0
        kind = self.kinds[category]
        self._conn.execute(delete(keys))
        done, last = 0, ""
        while True:
            rows = self._conn.execute(
                select(table).where(table.c.id > last).order_by(table.c.id).limit(batch)
            ).all()
            if not rows:
                break
            records = [_record(category, kind, dict(r._mapping)) for r in rows]
            pairs = [
                {"key": key_hash(k), "record_id": r.id}
                for r in records
                for k in dict.fromkeys(kind.search_keys(r))
            ]
            if pairs:
                self._conn.execute(keys.insert(), pairs)
            done += len(records)
            last = records[-1].id
        self._set_keys_version(category)
        self._conn.commit()
        return done

    def key_count(self, category: Category) -> int:
        keys = self.key_tables.get(category)
        if keys is None:
            return 0
        return int(self._conn.execute(select(func.count()).select_from(keys)).scalar_one())

    def _unindex_keys(self, category: Category, ids: Sequence[str]) -> None:
        table = self.key_tables.get(category)
        if table is None:
            return
        for start in range(0, len(ids), 500):
            self._conn.execute(
                delete(table).where(table.c.record_id.in_(list(ids[start : start + 500])))
            )

    def _unindex_text(self, category: Category, ids: Sequence[str]) -> None:
        kind = self.kinds.get(category)
        if kind is not None and kind.text_fields and ids:
            self._text.unindex(self._conn, category.value, ids)

    # --- reading (answering) -----------------------------------------------------------------

    async def search(self, category: Category, criteria: Any, limit: int) -> list[Match]:
        if self._async is None:
            kind = self.kinds[category]
            if not kind.scores_apart:
                return self.search_now(category, criteria, limit)
            criteria, candidates = self._found_on(self._conn, category, kind, criteria, limit)
            return await asyncio.to_thread(_ranked, kind, criteria, candidates, limit)
        kind = self.kinds[category]
        found: list[list[tuple[Record, float]]] = []
        for lookup in kind.lookups(criteria):
            if isinstance(lookup, TextQuery):
                async with self._async.connect() as conn:
                    found.append(
                        await conn.run_sync(self._text_search, category, kind, lookup, limit)
                    )
            elif isinstance(lookup, KeyQuery):
                async with self._async.connect() as conn:
                    records, held = await conn.run_sync(self._key_search, category, kind, lookup)
                criteria = kind.informed(criteria, held)
                found.append([(r, 1.0) for r in records])
            else:
                found.append(
                    [(r, 1.0) for r in await self._pg_lookup(category, kind, lookup, limit)]
                )
        if kind.scores_apart:
            return await asyncio.to_thread(_ranked, kind, criteria, found, limit)
        return _ranked(kind, criteria, found, limit)

    async def _pg_lookup(
        self, category: Category, kind: Kind, lookup: Mapping[str, str], limit: int
    ) -> list[Record]:
        """An indexed lookup straight on asyncpg: through SQLAlchemy's greenlet bridge the
        same SELECT costs several times as much."""
        if self._pool is None:
            async with self._pool_lock:  # the first checks arrive together
                if self._pool is None:
                    assert self._async is not None
                    self._pool = await open_pool(self._async.url, max_size=8)
        shape = tuple(sorted(lookup))
        sql = self._pg_sql.get((category, shape))
        if sql is None:
            columns = ", ".join(c.name for c in self.tables[category].columns)
            where = " AND ".join(f"{c} = ${n}" for n, c in enumerate(shape, 1))
            sql = self._pg_sql[(category, shape)] = (
                f"SELECT {columns} FROM {category.value} WHERE {where} LIMIT ${len(shape) + 1}"
            )
        rows = await self._pool.fetch(sql, *(lookup[c] for c in shape), limit)
        return [_record(category, kind, dict(r)) for r in rows]

    def search_now(self, category: Category, criteria: Any, limit: int) -> list[Match]:
        """Candidates by indexed equality lookups only, scored by the kind, best first."""
        return self._search_on(self._conn, category, criteria, limit)

    def _search_on(
        self, conn: Connection, category: Category, criteria: Any, limit: int
    ) -> list[Match]:
        kind = self.kinds[category]
        criteria, found = self._found_on(conn, category, kind, criteria, limit)
        return _ranked(kind, criteria, found, limit)

    def _found_on(
        self, conn: Connection, category: Category, kind: Kind, criteria: Any, limit: int
    ) -> tuple[Any, list[list[tuple[Record, float]]]]:
        """A check's candidates by each of its lookups, and its criteria as informed by them."""
        found: list[list[tuple[Record, float]]] = []
        for lookup in kind.lookups(criteria):
            if isinstance(lookup, TextQuery):
                found.append(self._text_search(conn, category, kind, lookup, limit))
            elif isinstance(lookup, KeyQuery):
                records, held = self._key_search(conn, category, kind, lookup)
                criteria = kind.informed(criteria, held)
                found.append([(r, 1.0) for r in records])
            else:
                found.append([(r, 1.0) for r in self._lookup(conn, category, kind, lookup, limit)])
        return criteria, found

    def _key_search(
        self, conn: Connection, category: Category, kind: Kind, query: KeyQuery
    ) -> tuple[list[Record], dict[str, int]]:
        """The records with the most weight from the keys they share with the query: a key
        held by n records gives each its class's weight / n. Each key reads at most its
        class's per_key + 1 index entries, so a frequent surname costs no more than a rare
        one; a key held by more is counted only when nothing rarer found a record. Also
        how many records hold each key, so counted (for `Kind.informed`)."""
        table = self.key_tables.get(category)
        if table is None or not query.keys:
            return [], {}
        stmt, sql, fixed = self._key_statement(category)
        raw = conn is self._conn and self._raw is not None
        if query.at_least:
            return self._exhaustive_key_search(conn, category, query, stmt, sql, fixed, raw)
        classes = dict(query.classes)
        default = KeyClass(per_key=query.per_key)
        weights: dict[str, float] = {}
        held: dict[str, int] = {}
        common: list[tuple[list[str], float]] = []
        for key in query.keys:
            cls = classes.get(key.partition(":")[0], default)
            params = {"key": key_hash(key), "limit": cls.per_key + 1}
            if raw:
                ids = [r[0] for r in self._raw.execute(sql, {**fixed, **params})]
            else:
                ids = [r[0] for r in conn.execute(stmt, params)]
            held[key] = len(ids)
            if not cls.weight:
                continue
            if len(ids) > cls.per_key:
                common.append((ids[: cls.per_key], cls.weight / cls.per_key))
                continue
            for record_id in ids:
                weights[record_id] = weights.get(record_id, 0.0) + cls.weight / len(ids)
        if not weights:
            for ids, weight in common:
                for record_id in ids:
                    weights[record_id] = weights.get(record_id, 0.0) + weight
        chosen = sorted(weights, key=lambda i: -weights[i])[: query.candidates]
        return self._get_many_on(conn, category, chosen), held

    def _exhaustive_key_search(
        self,
        conn: Connection,
        category: Category,
        query: KeyQuery,
        stmt: Select[Any],
        sql: str,
        fixed: dict[str, Any],
        raw: bool,
    ) -> tuple[list[Record], dict[str, int]]:
        """Every record holding at least `query.at_least` of the keys, however many hold
        each: nothing is capped, so no record the kind's keys promise can be dropped."""
        shared: dict[str, int] = {}
        held: dict[str, int] = {}
        for key in dict.fromkeys(query.keys):
            params = {"key": key_hash(key), "limit": _NO_LIMIT}
            if raw:
                ids = [r[0] for r in self._raw.execute(sql, {**fixed, **params})]
            else:
                ids = [r[0] for r in conn.execute(stmt, params)]
            held[key] = len(ids)
            for record_id in ids:
                shared[record_id] = shared.get(record_id, 0) + 1
        chosen = [i for i, n in shared.items() if n >= query.at_least]
        return self._get_many_on(conn, category, chosen), held

    def _key_statement(self, category: Category) -> tuple[Select[Any], str, dict[str, Any]]:
        found = self._key_lookups.get(category)
        if found is None:
            table = self.key_tables[category]
            stmt = (
                select(table.c.record_id)
                .where(table.c.key == bindparam("key"))
                .limit(bindparam("limit"))
            )
            compiled = stmt.compile(dialect=self._named)
            found = (stmt, str(compiled), dict(compiled.params))
            self._key_lookups[category] = found
        return found

    def get_many(self, category: Category, ids: Sequence[str]) -> list[Record]:
        """Records by id, in the order asked (ids not held are left out)."""
        return self._get_many_on(self._conn, category, ids)

    def _get_many_on(
        self, conn: Connection, category: Category, ids: Sequence[str]
    ) -> list[Record]:
        table, kind = self.tables[category], self.kinds[category]
        found: dict[str, Record] = {}
        for start in range(0, len(ids), 500):
            rows = conn.execute(select(table).where(table.c.id.in_(list(ids[start : start + 500]))))
            for row in rows:
                record = _record(category, kind, dict(row._mapping))
                found[record.id] = record
        return [found[i] for i in ids if i in found]

    def _text_search(
        self, conn: Connection, category: Category, kind: Kind, query: TextQuery, limit: int
    ) -> list[tuple[Record, float]]:
        """Ranked by the index (records with more of the words, rarer ones, first) into a
        relevance in (0, 1]; the kind's score then says how much of the query a record
        really matches."""
        words = [w for w in query.words if fold(w).strip()]
        if not words:
            return []
        out = []
        for record_id, relevance in self._text.search(conn, category.value, words, limit):
            record = self._get_on(conn, category, record_id)
            if record is not None:
                out.append((record, relevance))
        return out

    def _lookup(
        self,
        conn: Connection,
        category: Category,
        kind: Kind,
        lookup: Mapping[str, str],
        limit: int,
    ) -> list[Record]:
        shape = tuple(sorted(lookup))
        stmt, sql, fixed, names = self._statement(category, shape)
        params = {**lookup, "limit": limit}
        if conn is self._conn and self._raw is not None:
            rows = self._raw.execute(sql, {**fixed, **params}).fetchall()
        else:
            rows = [tuple(r) for r in conn.execute(stmt, params)]
        return [_record(category, kind, dict(zip(names, r, strict=True))) for r in rows]

    def _statement(
        self, category: Category, shape: tuple[str, ...]
    ) -> tuple[Select[Any], str, dict[str, Any], tuple[str, ...]]:
        """The lookup's statement, its SQL for the raw driver, the parameters the dialect
        adds, and the names of the columns it selects."""
        found = self._lookups.get((category, shape))
        if found is None:
            table = self.tables[category]
            stmt = (
                select(table)
                .where(and_(*(table.c[c] == bindparam(c) for c in shape)))
                .limit(bindparam("limit"))
            )
            compiled = stmt.compile(dialect=self._named)
            # Values the dialect adds itself (SQLite's OFFSET 0) travel as parameters too.
            names = tuple(c.name for c in stmt.selected_columns)
            found = (stmt, str(compiled), dict(compiled.params), names)
            self._lookups[(category, shape)] = found
        return found

    def get(self, category: Category, record_id: str) -> Record | None:
        return self._get_on(self._conn, category, record_id)

    def _get_on(self, conn: Connection, category: Category, record_id: str) -> Record | None:
        table, kind = self.tables.get(category), self.kinds.get(category)
        if table is None or kind is None:
            return None
        row = conn.execute(select(table).where(table.c.id == record_id)).first()
        return None if row is None else _record(category, kind, dict(row._mapping))

    def count(self, category: Category) -> int:
        table = self.tables.get(category)
        if table is None:
            return 0
        return int(self._conn.execute(select(func.count()).select_from(table)).scalar_one())

    def counts_apart(self) -> dict[Category, int]:
        """Each category's records, read on a connection of its own: a worker thread may
        ask while the event loop searches on the store's."""
        with self.engine.connect() as conn:
            found = {
                c: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for c, t in self.tables.items()
            }
            conn.rollback()
        return found

    def iter_ids(self, category: Category) -> Iterable[str]:
        table = self.tables.get(category)
        if table is not None:
            yield from (r.id for r in self._conn.execute(select(table.c.id)))


def _ranked(
    kind: Kind, criteria: Any, found: Sequence[Sequence[tuple[Record, float]]], limit: int
) -> list[Match]:
    """Each candidate once (its first lookup wins), scored by the kind, best first."""
    seen: dict[str, Match] = {}
    for candidates in found:
        for record, relevance in candidates:
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


_NO_LIMIT = 2**62
"""A LIMIT no table reaches (both SQLite and PostgreSQL take a 64-bit one)."""

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def _b32(data: bytes) -> str:
    """base64.b32encode(data).decode().lower() for a multiple of 5 bytes, without padding:
    the standard library's is pure Python and costs more than the hash it encodes."""
    out: list[str] = []
    for start in range(0, len(data), 5):
        n = int.from_bytes(data[start : start + 5], "big")
        out += (
            _B32_PAIRS[n >> 30],
            _B32_PAIRS[(n >> 20) & 1023],
            _B32_PAIRS[(n >> 10) & 1023],
            _B32_PAIRS[n & 1023],
        )
    return "".join(out)


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
    return Record(
        id=row["id"],
        category=category,
        keys={c.name: row[c.name] for c in kind.key_columns},
        # Records stored before a field took its one name read as if imported today.
        fields=current_names(category, orjson.loads(row["data"])),
    )


__all__ = [
    "RecordStore",
    "UpsertCount",
    "fold",
    "key_hash",
    "keys_table_for",
    "make_engine",
    "records_metadata",
    "table_for",
]
