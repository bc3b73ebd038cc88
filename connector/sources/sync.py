"""One sync of one source: read what changed in the national database, apply it to the store."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, MetaData, Table, create_engine, select
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from connector.errors import ConfigError
from connector.records.kinds.base import Record, RowError
from connector.records.provenance import Held
from connector.records.store import RecordStore
from connector.sources.model import Source
from connector.storage.urls import sync_url

log = structlog.get_logger(__name__)

BATCH = 5_000


class SourceError(ConfigError):
    """A source that cannot be read as sources.yaml describes it."""

    code = "source_invalid"


@dataclass(slots=True, kw_only=True)
class SyncReport:
    source: str
    category: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    rejected: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (source key, reason)
    refused: str | None = None  # why removals were not applied

    def reject(self, key: str, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < 1000:
            self.errors.append((key, reason))


def source_key(values: Mapping[str, Any], key: list[str]) -> str:
    return "\x1f".join(_text(values[k]) for k in key)


def to_row(source: Source, values: Mapping[str, Any]) -> dict[str, Any]:
    """An import row (our field names) from a source row (theirs); empty columns left out,
    as an empty CSV cell would be."""
    row: dict[str, Any] = dict(source.constants)
    for ours, theirs in source.columns.items():
        value = values[theirs]
        if value is not None and value != "":
            row[ours] = _plain(value)
    return row


def digest(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _plain(value: Any) -> Any:
    """Database values as an NDJSON import would carry them."""
    if isinstance(value, dt.datetime | dt.date):
        return (
            value.isoformat()[:10]
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime)
            else value.isoformat()
        )
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def _text(value: Any) -> str:
    plain = _plain(value)
    return plain if isinstance(plain, str) else orjson.dumps(plain).decode()


def _snapshot(conn: Connection) -> None:
    """One read-only snapshot for the whole sync: the keys and the rows are read as of the
    same moment, so a row committed in between is neither imported and then taken for gone,
    nor skipped. Belt and braces: we only ever SELECT, and the session refuses writes."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
        conn.exec_driver_sql("BEGIN")  # a WAL read transaction is a snapshot


def sync(
    source: Source, store: RecordStore, *, clock: Callable[[], float], allow_removal: bool = False
) -> SyncReport:
    """Bring the store's records from this source up to date with it: new and changed rows
    upserted, rows gone from the source removed (a found vehicle is no longer a hit).

    The source's keys are read in full each time (deletions leave no timestamp), then the
    rows: with a `changed` column only those stamped from the newest timestamp seen last
    time, less `overlap` (a transaction that commits late carries an earlier stamp); without
    one, every row, compared with the digest of what was imported from it. Both reads share
    one snapshot of the source.
    """
    kind = store.kind(source.category)
    if kind is None:
        raise SourceError(f"source {source.name}: {source.category.value} cannot be held")
    report = SyncReport(source=source.name, category=source.category.value)
    prov = store.provenance()
    held = prov.held(source.name)
    cursor = prov.cursor(source.name) if source.changed else None
    engine = create_engine(sync_url(source.url), hide_parameters=True)
    try:
        with engine.connect() as conn:
            _snapshot(conn)
            table = _reflect(conn, source)
            present: set[str] = set()
            for rows in _chunks(conn, select(*(table.c[k] for k in source.key)), BATCH):
                present.update(source_key(r, source.key) for r in rows)
            gone = {k: h for k, h in held.items() if k not in present}
            if gone and not allow_removal and len(gone) > source.max_removal_share * len(held):
                report.refused = (
                    f"{len(gone)} of {len(held)} records would be removed, more than "
                    f"max_removal_share ({source.max_removal_share:g}); nothing was removed "
                    "(run `records sync --allow-removal` if that is right)"
                )
                log.error(
                    "source_removal_refused", source=source.name, gone=len(gone), held=len(held)
                )
                gone = {}
            wanted = select(
                *{
                    table.c[c]
                    for c in [
                        *source.key,
                        *source.columns.values(),
                        *([source.changed] if source.changed else []),
                    ]
                }
            )
            newest: Any = None
            if source.changed and cursor is not None:
                newest = _cursor_value(table.c[source.changed], cursor)
                wanted = wanted.where(table.c[source.changed] >= _less_overlap(newest, source))
            owners = {h.natural_key: k for k, h in held.items() if k in present}
            for rows in _chunks(conn, wanted, BATCH):
                _apply(source, store, rows, held, owners, report)
                if source.changed:
                    stamps = [r[source.changed] for r in rows if r[source.changed] is not None]
                    if stamps and (newest is None or max(stamps) > newest):
                        newest = max(stamps)
            conn.rollback()
    except SourceError:
        raise
    except SQLAlchemyError as exc:
        store.commit()
        raise SourceError(
            f"source {source.name} ({source.where}): {getattr(exc, 'orig', None) or exc}".strip()
        ) from exc
    finally:
        engine.dispose()
    _remove_gone(source, store, held, gone, report)
    prov.mark(source.name, None if newest is None else _text(newest), clock())
    store.commit()
    log.info(
        "source_synced",
        source=source.name,
        category=report.category,
        read=report.read,
        inserted=report.inserted,
        updated=report.updated,
        removed=report.removed,
        rejected=report.rejected,
        refused=report.refused,
    )
    return report


def _less_overlap(newest: Any, source: Source) -> Any:
    if isinstance(newest, dt.datetime | dt.date) and source.overlap_s:
        return newest - dt.timedelta(seconds=source.overlap_s)
    return newest


def _reflect(conn: Connection, source: Source) -> Table:
    try:
        table = Table(source.table, MetaData(), schema=source.db_schema, autoload_with=conn)
    except NoSuchTableError:
        raise SourceError(f"source {source.name}: no table {source.where}") from None
    named = [*source.key, *source.columns.values(), *([source.changed] if source.changed else [])]
    missing = sorted({c for c in named if c not in table.c})
    if missing:
        raise SourceError(
            f"source {source.name}: {source.where} has no column "
            f"{', '.join(missing)} (it has {', '.join(table.c.keys())})"
        )
    return table


def _cursor_value(column: Any, cursor: str) -> Any:
    """The stored cursor (text) back in the column's own type, so the comparison is the
    database's, not a string comparison."""
    python_type: type | None
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = None
    if python_type is dt.datetime:
        return dt.datetime.fromisoformat(cursor)
    if python_type is dt.date:
        return dt.date.fromisoformat(cursor)
    if python_type in (int, float, Decimal):
        return orjson.loads(cursor)
    return cursor


def _chunks(conn: Connection, query: Any, size: int) -> Iterator[list[Mapping[str, Any]]]:
    result = conn.execution_options(stream_results=True, yield_per=size).execute(query)
    for part in result.mappings().partitions(size):
        yield [dict(r) for r in part]


def _apply(
    source: Source,
    store: RecordStore,
    rows: list[Mapping[str, Any]],
    held: dict[str, Held],
    owners: dict[str, str],
    report: SyncReport,
) -> None:
    kind = store.kinds[source.category]
    records: list[Record] = []
    noted: dict[str, Held] = {}
    replaced: list[str] = []
    for values in rows:
        report.read += 1
        key = source_key(values, source.key)
        row = to_row(source, values)
        row_digest = digest(row)
        before = held.get(key)
        if before is not None and before.digest == row_digest:
            report.unchanged += 1
            continue
        try:
            record = kind.parse_row(row)
        except RowError as exc:
            report.reject(key, str(exc))
            continue
        if not record.id_given:
            record = store.with_opaque_id(source.category, kind, record)
        natural = "\x1f".join(str(record.keys[k]) for k in kind.natural_key)
        owner = owners.get(natural)
        if owner is not None and owner != key:
            # Two rows of the source describe one record (one document, one VIN): keeping
            # both would let the removal of either take the record the other still holds.
            report.reject(
                key,
                f"the same {kind.category.value.replace('_', ' ')[:-1]} as "
                f"source row {owner.replace(chr(31), '/')}",
            )
            continue
        if before is not None and before.record_id != record.id:
            replaced.append(before.record_id)  # its natural key changed at the source
            if owners.get(before.natural_key) == key:
                del owners[before.natural_key]
        owners[natural] = key
        records.append(record)
        noted[key] = held[key] = Held(record_id=record.id, natural_key=natural, digest=row_digest)
    if replaced:
        report.removed += store.remove_ids(source.category, replaced)
    if records:
        counts = store.upsert(source.category, records)  # commits the batch ...
        report.inserted += counts.inserted
        report.updated += counts.updated
        report.unchanged += counts.unchanged  # a changed row whose record came out the same
    store.provenance().put(source.name, source.category.value, noted)
    store.commit()  # ... and this where it came from, right after


def _remove_gone(
    source: Source,
    store: RecordStore,
    held: dict[str, Held],
    gone: Mapping[str, Held],
    report: SyncReport,
) -> None:
    if not gone:
        return
    still = {h.record_id for k, h in held.items() if k not in gone}
    ids = sorted({h.record_id for h in gone.values()} - still)
    report.removed += store.remove_ids(source.category, ids)
    store.provenance().forget(source.name, gone)
    for k in gone:
        del held[k]
