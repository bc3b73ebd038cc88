"""Schema versions of the two databases (records, enquiry log): check, create, upgrade."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect

from connector.errors import SchemaError
from connector.storage.sqlite import create_private
from connector.storage.urls import sqlite_file, sync_url

HERE = Path(__file__).parent
# Alembic's `context` and `op` are process-wide: one migration at a time in a process, even
# when nodes are set up from several threads (the demo).
_LOCK = threading.RLock()


class Schema(enum.Enum):
    """Each database has its own scripts and its own version table, so both can live in one
    PostgreSQL database."""

    RECORDS = "records"
    ENQUIRIES = "enquiries"

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.value}"


BASELINES = {Schema.RECORDS: "r0001", Schema.ENQUIRIES: "e0001"}
# What a database made before migrations holds; `db upgrade` adopts one that has them all.
_BASELINE_TABLES = {
    Schema.RECORDS: {
        "travel_documents",
        "vehicles",
        "artworks",
        "wanted_persons",
        "terrorism_suspects",
        "dna_profiles",
        "fingerprints",
        "record_meta",
    },
    Schema.ENQUIRIES: {"enquiries", "outbox", "digests"},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    current: str | None  # the database's revision; None when it has none
    head: str  # the newest revision this version of the connector knows
    known: bool  # `current` is one of this version's revisions
    empty: bool  # no tables at all: a new database

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def migration_engine(url: str) -> Engine:
    """An engine whose transactions hold DDL too. SQLite's driver commits before each
    CREATE or ALTER on its own; here a migration is one transaction (under the write lock),
    so a failed one leaves the database as it was and can be run again."""
    engine = create_engine(sync_url(url))
    if engine.dialect.name == "sqlite":
        create_private(sqlite_file(url))

        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _config(schema: Schema, conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / schema.value))
    cfg.attributes["connection"] = conn
    cfg.attributes["version_table"] = schema.version_table
    return cfg


@cache
def _scripts(schema: Schema) -> ScriptDirectory:
    """Each schema's scripts, read once a process: reading them costs more than creating a
    small database, and a demo or a test creates hundreds."""
    return ScriptDirectory(str(HERE / schema.value))


def status(schema: Schema, conn: Connection) -> Status:
    with _LOCK:
        return _status(schema, conn)


def _status(schema: Schema, conn: Connection) -> Status:
    scripts = _scripts(schema)
    context = MigrationContext.configure(conn, opts={"version_table": schema.version_table})
    current = context.get_current_revision()
    head = scripts.get_current_head()
    assert head is not None
    known = current is None or any(s.revision == current for s in scripts.walk_revisions())
    tables = set(inspect(conn).get_table_names()) - {schema.version_table}
    return Status(current=current, head=head, known=known, empty=current is None and not tables)


def upgrade(schema: Schema, conn: Connection) -> None:
    """To the newest revision, in the caller's transaction: what `alembic upgrade head` does,
    with the scripts read once and the environment (env_common.run) called directly."""
    from connector.storage.migrations.env_common import run

    scripts = _scripts(schema)

    def steps(rev: str, _context: MigrationContext) -> list[RevisionStep]:
        return scripts._upgrade_revs("head", rev)

    with (
        _LOCK,
        EnvironmentContext(_config(schema, conn), scripts, fn=steps, destination_rev="head"),
    ):
        run()


def upgrade_existing(schema: Schema, conn: Connection) -> tuple[str | None, str]:
    """`ncb-connector db upgrade`: to the newest revision, adopting a database made before
    migrations when it has the baseline's tables. (revision before, revision after)."""
    found = status(schema, conn)
    if not found.known:
        raise SchemaError(
            f"schema revision {found.current} is newer than this version "
            f"knows (up to {found.head}); nothing changed"
        )
    if found.current is None and not found.empty:
        present = set(inspect(conn).get_table_names())
        missing = _BASELINE_TABLES[schema] - present
        if missing:
            raise SchemaError(
                f"the database has tables but no schema version, and lacks "
                f"{', '.join(sorted(missing))}: it is not one of ours"
            )
        with _LOCK:
            command.stamp(_config(schema, conn), BASELINES[schema])
    upgrade(schema, conn)
    return found.current, found.head


def ensure(schema: Schema, conn: Connection, *, what: str) -> None:
    """Create a new (empty) database at the newest revision; refuse any other that is not
    exactly at it. Serving on a schema the code does not know would fail later and worse."""
    found = status(schema, conn)
    if found.up_to_date:
        return
    if found.empty:
        upgrade(schema, conn)
        return
    if found.current is None:
        raise SchemaError(
            f"the {what} has tables but no schema version (made by a version "
            "before migrations): run `ncb-connector db upgrade`"
        )
    if not found.known:
        raise SchemaError(
            f"the {what} is at schema revision {found.current}, which this "
            f"version does not know (it knows up to {found.head}): a newer "
            "version wrote it; run that version"
        )
    raise SchemaError(
        f"the {what} is at schema revision {found.current}, this version needs "
        f"{found.head}: run `ncb-connector db upgrade`"
    )
