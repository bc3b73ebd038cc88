"""The node's two databases as an admin keeps them: schema revisions, upgrades, search keys."""

# Here, in records, because this is the lowest layer that sees both what it needs: the
# migrations of both schemas (storage) and the record store's search keys (records). The
# enquiry log is reached through its schema only, so nothing of connector.enquiries is used.

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from contextlib import closing
from dataclasses import dataclass

from connector.records.store import RecordStore
from connector.settings.config import Settings
from connector.storage.migrations import (
    Schema,
    Status,
    migration_engine,
    status,
    upgrade_existing,
)
from connector.vocabulary import Category


@dataclass(frozen=True, slots=True, kw_only=True)
class Database:
    name: str  # as an admin reads it: "records", "enquiry log"
    schema: Schema
    url: str


def databases(settings: Settings) -> tuple[Database, ...]:
    return (
        Database(name="records", schema=Schema.RECORDS, url=settings.records_url),
        Database(name="enquiry log", schema=Schema.ENQUIRIES, url=settings.enquiries_url),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaState:
    database: Database
    found: Status

    @property
    def behind(self) -> bool:
        """A node would refuse it until `db upgrade` (a new database it creates itself)."""
        return not (self.found.up_to_date or self.found.empty)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeysOutdated:
    """A category whose search keys another version made: name search finds far fewer."""

    category: Category

    @property
    def behind(self) -> bool:
        return True  # until `db upgrade` or `records reindex` makes them anew


def database_status(settings: Settings) -> Iterator[SchemaState | KeysOutdated]:
    """Each database's schema revision beside the one this version needs; then, when both
    are at it, each category whose search keys are outdated (only a database that exists
    and is current can be asked)."""
    current = True
    for database in databases(settings):
        engine = migration_engine(database.url)
        try:
            with engine.connect() as conn:
                found = status(database.schema, conn)
        finally:
            engine.dispose()
        current = current and found.up_to_date
        yield SchemaState(database=database, found=found)
    if current:
        with closing(RecordStore.open(settings.records_url)) as store:
            for category in store.keys_outdated():
                yield KeysOutdated(category=category)


@dataclass(frozen=True, slots=True, kw_only=True)
class Upgraded:
    database: Database
    before: str | None  # None: a new database
    after: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rekeyed:
    category: Category
    records: int
    seconds: float


def upgrade_databases(settings: Settings) -> Iterator[Upgraded | Rekeyed]:
    """Both databases to the schema this version needs, then search keys for the records
    whose keys another version made, or none: an upgrade must not leave persons findable
    by reference only, or by the old keys."""
    for database in databases(settings):
        engine = migration_engine(database.url)
        try:
            with engine.begin() as conn:
                before, after = upgrade_existing(database.schema, conn)
        finally:
            engine.dispose()
        yield Upgraded(database=database, before=before, after=after)
    with closing(RecordStore.open(settings.records_url)) as store:
        yield from _rekey(store, store.keys_outdated())


def reindex(settings: Settings, only: Collection[Category] = ()) -> Iterator[Rekeyed]:
    """Every keyed category's search keys (or only those of `only`) made anew from the
    records' fields; the records themselves are not touched."""
    with closing(RecordStore.open(settings.records_url)) as store:
        yield from _rekey(store, [c for c in store.key_tables if not only or c in only])


def _rekey(store: RecordStore, categories: Collection[Category]) -> Iterator[Rekeyed]:
    for category in categories:
        started = time.perf_counter()
        n = store.rebuild_keys(category)
        yield Rekeyed(category=category, records=n, seconds=time.perf_counter() - started)
