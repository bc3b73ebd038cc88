"""The record store: national records in SQL (SQLite by default), searched by indexed keys only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    Engine,
    Index,
    MetaData,
    Select,
    String,
    Table,
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
from connector.records.documents import DocumentCriteria
from connector.records.model import TravelDocument
from connector.vocabulary import Category

metadata = MetaData()

travel_documents = Table(
    "travel_documents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("number", String(40), nullable=False),
    Column("number_key", String(20), nullable=False),
    Column("country", String(2), nullable=False),
    Column("document_type", String(2), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reported_on", Date),
    Column("holder_name", String(200)),
    Column("remarks", String(1000)),
    Index("uq_travel_documents_key", "number_key", "country", unique=True),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertCount:
    inserted: int = 0
    updated: int = 0


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _document_from_tuple(row: dict[str, Any]) -> TravelDocument:
    reported = row["reported_on"]
    return TravelDocument(
        id=row["id"], number=row["number"], number_key=row["number_key"],
        country=row["country"], document_type=row["document_type"], status=row["status"],
        reported_on=date.fromisoformat(reported) if reported else None,
        holder_name=row["holder_name"], remarks=row["remarks"],
    )


def _document_from_row(row: Any) -> TravelDocument:
    return TravelDocument(
        id=row.id, number=row.number, number_key=row.number_key, country=row.country,
        document_type=row.document_type, status=row.status, reported_on=row.reported_on,
        holder_name=row.holder_name, remarks=row.remarks,
    )


def _document_query(*, by_country: bool, by_type: bool) -> Select[Any]:
    """Built once per shape: constructing a statement costs more than the indexed lookup."""
    t = travel_documents
    q = select(t).where(t.c.number_key == bindparam("key"))
    if by_country:
        q = q.where(t.c.country == bindparam("country"))
    if by_type:
        # Only the first letter is the document class (P, I, A, C, V) across issuers.
        q = q.where(func.substr(t.c.document_type, 1, 1) == bindparam("doctype"))
    return q.limit(bindparam("limit"))


class RecordStore:
    """National records. SQLite queries run in the event loop: an indexed lookup takes
    microseconds, less than handing it to a thread would cost."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn = engine.connect()
        self._document_queries = {(c, d): _document_query(by_country=c, by_type=d)
                                  for c in (False, True) for d in (False, True)}
        # SQLite fast path: the same statements compiled once to SQL, run on the driver
        # connection; SQLAlchemy's per-execute bookkeeping costs more than the lookup.
        self._raw: Any = None
        self._sqlite_sql: dict[Select[Any],
                               tuple[str, tuple[str, ...], dict[str, Any]]] = {}
        if engine.dialect.name == "sqlite":
            named = sqlite_dialect(paramstyle="named")
            self._raw = self._conn.connection.dbapi_connection
            for stmt in self._document_queries.values():
                compiled = stmt.compile(dialect=named)
                # Literal values inside the statement (substr's 1, 1) travel as parameters.
                self._sqlite_sql[stmt] = (str(compiled),
                                          tuple(c.name for c in stmt.selected_columns),
                                          dict(compiled.params))

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
        metadata.create_all(self._conn)
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()
        self.engine.dispose()

    # --- writing (imports) -------------------------------------------------------------------

    def upsert_documents(self, docs: Sequence[TravelDocument]) -> UpsertCount:
        """Insert or update by (number_key, country); one transaction for the batch."""
        if not docs:
            return UpsertCount()
        # Later rows of a batch win, as they would row by row.
        unique = {(d.number_key, d.country): d for d in docs}
        keys = list(unique)
        existing: set[tuple[str, str]] = set()
        for chunk_start in range(0, len(keys), 400):
            chunk = keys[chunk_start:chunk_start + 400]
            q = select(travel_documents.c.number_key, travel_documents.c.country).where(
                travel_documents.c.number_key.in_([k for k, _ in chunk]))
            existing.update((r.number_key, r.country) for r in self._conn.execute(q)
                            if (r.number_key, r.country) in unique)
        rows = [{
            "id": d.id, "number": d.number, "number_key": d.number_key, "country": d.country,
            "document_type": d.document_type, "status": d.status, "reported_on": d.reported_on,
            "holder_name": d.holder_name, "remarks": d.remarks,
        } for d in unique.values()]
        stmt = sqlite_insert(travel_documents)
        stmt = stmt.on_conflict_do_update(
            index_elements=["number_key", "country"],
            set_={c: stmt.excluded[c] for c in ("number", "document_type", "status",
                                                 "reported_on", "holder_name", "remarks")},
        )
        self._conn.execute(stmt, rows)
        self._conn.commit()
        # A number given twice in one batch is an update of the first, as it would be apart.
        return UpsertCount(inserted=len(unique) - len(existing),
                           updated=len(existing) + len(docs) - len(unique))

    def remove(self, category: Category, record_id: str) -> bool:
        if category is not Category.TRAVEL_DOCUMENTS:
            return False
        result = self._conn.execute(delete(travel_documents).where(
            travel_documents.c.id == record_id))
        self._conn.commit()
        return bool(result.rowcount)

    # --- reading (answering) -----------------------------------------------------------------

    async def find_documents(self, criteria: DocumentCriteria, limit: int) -> list[TravelDocument]:
        return self.find_documents_now(criteria, limit)

    def find_documents_now(self, criteria: DocumentCriteria, limit: int) -> list[TravelDocument]:
        stmt = self._document_queries[(criteria.country is not None,
                                       criteria.document_type is not None)]
        params = {"key": criteria.number_key, "country": criteria.country,
                  "doctype": (criteria.document_type or "")[:1], "limit": limit}
        if self._raw is not None:
            sql, columns, fixed = self._sqlite_sql[stmt]
            rows = self._raw.execute(sql, {**fixed, **params}).fetchall()
            return [_document_from_tuple(dict(zip(columns, r, strict=True))) for r in rows]
        return [_document_from_row(r) for r in self._conn.execute(stmt, params)]

    def get_document(self, record_id: str) -> TravelDocument | None:
        row = self._conn.execute(select(travel_documents).where(
            travel_documents.c.id == record_id)).first()
        return None if row is None else _document_from_row(row)

    def count(self, category: Category) -> int:
        if category is not Category.TRAVEL_DOCUMENTS:
            return 0
        return int(self._conn.execute(select(func.count()).select_from(travel_documents))
                   .scalar_one())

    def iter_ids(self, category: Category) -> Iterable[str]:
        if category is Category.TRAVEL_DOCUMENTS:
            yield from (r.id for r in self._conn.execute(select(travel_documents.c.id)))


__all__ = ["RecordStore", "UpsertCount", "make_engine"]
