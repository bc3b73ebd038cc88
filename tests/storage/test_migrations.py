"""Schema migrations: what they build is what the code expects, and unknown schemas are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine
from support.databases import DatabaseUrl, run_sql
from support.processes import cli, init

from connector.approvals import tables as approval_tables
from connector.enquiries import witnessed
from connector.enquiries.log import EnquiryLog
from connector.enquiries.schema import metadata as log_metadata
from connector.errors import SchemaError
from connector.notify import tables as notify_tables
from connector.records.store import RecordStore, records_metadata
from connector.storage.migrations import Schema
from connector.storage.urls import sync_url


def _differences(url: str, metadata: MetaData, version_table: str) -> list[object]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": version_table})
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    # The full-text tables are the backend's own (FTS5, tsvector), made by the migration.
    return [
        d
        for d in diffs
        if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name.endswith("_text"))
        and "_text_" not in repr(d)
    ]


def test_migrations_build_exactly_the_tables_the_code_uses(db_url: DatabaseUrl) -> None:
    """A kind or log column changed without a migration fails here."""
    records, log_url = db_url("records"), db_url("enquiries")
    RecordStore.open(records).close()
    EnquiryLog.open(log_url).close()
    assert _differences(records, records_metadata(), Schema.RECORDS.version_table) == []
    # The log's database also holds notify's tables and the witnessed checkpoints, declared
    # beside the code that uses them.
    assert notify_tables.outbox.metadata is log_metadata
    assert witnessed.witnessed.metadata is log_metadata
    assert approval_tables.approvals.metadata is log_metadata
    assert _differences(log_url, log_metadata, Schema.ENQUIRIES.version_table) == []


def test_a_schema_revision_this_version_does_not_know_is_refused(db_url: DatabaseUrl) -> None:
    url = db_url("records")
    RecordStore.open(url).close()
    run_sql(url, "UPDATE alembic_version_records SET version_num = 'r9999'")
    with pytest.raises(SchemaError, match="r9999, which this version does not know"):
        RecordStore.open(url)


def test_tables_without_a_version_are_refused_until_db_upgrade_adopts_them(
    db_url: DatabaseUrl,
) -> None:
    url = db_url("enquiries")
    engine = create_engine(sync_url(url))
    # As a version before migrations left it: the baseline's tables only.
    log_metadata.create_all(
        engine, tables=[log_metadata.tables[t] for t in ("enquiries", "outbox", "digests")]
    )
    engine.dispose()
    run_sql(url, "ALTER TABLE enquiries DROP COLUMN sealed")  # added by e0003
    with pytest.raises(SchemaError, match="db upgrade"):
        EnquiryLog.open(url)

    from connector.storage.migrations import upgrade_existing

    engine = create_engine(sync_url(url))
    with engine.begin() as conn:
        assert upgrade_existing(Schema.ENQUIRIES, conn) == (None, "e0007")
    engine.dispose()
    EnquiryLog.open(url).close()


def test_db_status_and_upgrade_from_the_command_line(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    status = cli("db", "status", config=config)
    assert "new (created on first use)" in status.stdout
    assert cli("db", "upgrade", config=config).stdout.splitlines() == [
        "records: new → r0004",
        "enquiry log: new → e0007",
    ]
    assert cli("db", "upgrade", config=config).stdout.splitlines() == [
        "records: already at r0004",
        "enquiry log: already at e0007",
    ]
    run_sql(
        f"sqlite:///{tmp_path / 'FR' / 'records.db'}",
        "UPDATE alembic_version_records SET version_num = 'r9999'",
    )
    status = cli("db", "status", config=config, check=False)
    assert status.returncode == 1
    assert "unknown revision" in status.stdout
    # The node refuses to serve on it, saying why, with no traceback.
    run = cli("run", config=config, check=False)
    assert run.returncode == 2
    assert "r9999" in run.stderr
    assert "Traceback" not in run.stderr


def test_database_urls_are_checked_in_the_config(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    data = yaml.safe_load(config.read_text())
    data["databases"] = {"records": "mysql://localhost/records"}
    config.write_text(yaml.safe_dump(data))
    result = cli("config", "check", config=config, check=False)
    assert result.returncode == 2
    assert "unsupported database 'mysql'" in result.stderr


def test_db_upgrade_gives_persons_held_before_name_search_their_keys(tmp_path: Path) -> None:
    import io

    from connector.records.criteria import parse_criteria
    from connector.records.importer import import_stream
    from connector.vocabulary import Category

    config, _, _ = init(tmp_path, "DE")
    url = f"sqlite:///{tmp_path / 'DE' / 'records.db'}"
    store = RecordStore.open(url)
    import_stream(
        store,
        io.BytesIO(
            b'{"id": "DE-1", "first_name": "Erika", "last_name": '
            b'"Mustermann", "warrant_country": "DE"}\n'
        ),
        category=Category.WANTED_PERSONS,
        fmt="ndjson",
    )
    store.close()
    # As revision r0002 left it: persons, and no key tables.
    run_sql(url, "DROP TABLE wanted_persons_keys")
    run_sql(url, "DROP TABLE terrorism_suspects_keys")
    run_sql(url, "DROP TABLE dna_profiles_keys")
    run_sql(url, "UPDATE alembic_version_records SET version_num = 'r0002'")
    out = cli("db", "upgrade", config=config).stdout
    assert "records: r0002 → r0004" in out
    assert "wanted_persons: search keys made for 1 record(s)" in out
    store = RecordStore.open(url)
    try:
        criteria = parse_criteria(Category.WANTED_PERSONS, {"name": "Erika Mustermann"})
        assert [m.record.id for m in store.search_now(Category.WANTED_PERSONS, criteria, 5)] == [
            "DE-1"
        ]
    finally:
        store.close()
    assert "search keys made for 1" in cli("records", "reindex", config=config).stdout


def test_a_failed_upgrade_leaves_the_database_as_it_was(db_url: DatabaseUrl) -> None:
    """Each upgrade is one transaction, DDL included (SQLite's driver would commit each
    CREATE on its own): after a failure nothing is half made, and the retry works."""
    from sqlalchemy.exc import SQLAlchemyError

    from connector.storage.migrations import migration_engine, upgrade_existing

    url = db_url("records")
    RecordStore.open(url).close()
    # Back to r0001, with a stray table in the way of r0002.
    for table in (
        "wanted_persons_keys",
        "terrorism_suspects_keys",
        "dna_profiles_keys",
        "source_rows",
        "source_state",
    ):
        run_sql(url, f"DROP TABLE {table}")
    run_sql(url, "UPDATE alembic_version_records SET version_num = 'r0001'")
    run_sql(url, "CREATE TABLE source_state (x INTEGER)")
    engine = migration_engine(url)
    try:
        with pytest.raises(SQLAlchemyError), engine.begin() as conn:
            upgrade_existing(Schema.RECORDS, conn)
        with engine.connect() as conn:
            from sqlalchemy import inspect

            assert "source_rows" not in inspect(conn).get_table_names()
        run_sql(url, "DROP TABLE source_state")
        with engine.begin() as conn:
            assert upgrade_existing(Schema.RECORDS, conn) == ("r0001", "r0004")
    finally:
        engine.dispose()
    RecordStore.open(url).close()


def test_keys_made_by_another_version_are_reported_and_made_anew(tmp_path: Path) -> None:
    import io

    from connector.records.importer import import_stream
    from connector.vocabulary import Category

    config, _, _ = init(tmp_path, "DE")
    cli("db", "upgrade", config=config)
    url = f"sqlite:///{tmp_path / 'DE' / 'records.db'}"
    store = RecordStore.open(url)
    import_stream(
        store,
        io.BytesIO(
            b'{"id": "DE-1", "first_name": "Erika", "last_name": '
            b'"Mustermann", "warrant_country": "DE"}\n'
        ),
        category=Category.WANTED_PERSONS,
        fmt="ndjson",
    )
    assert store.keys_outdated() == []
    store.close()
    run_sql(url, "UPDATE record_meta SET value = '1' WHERE key = 'keys:wanted_persons'")
    status = cli("db", "status", config=config, check=False)
    assert status.returncode == 1
    assert "wanted_persons: search keys made by another version" in status.stdout
    assert (
        "wanted_persons: search keys made for 1 record(s)"
        in cli("db", "upgrade", config=config).stdout
    )
    assert cli("db", "status", config=config).returncode == 0


def test_new_sqlite_databases_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """They hold personal data: made 0600 (SQLite gives its -wal and -shm files the same
    mode), wherever they are, with or without a state directory of 0700."""
    import stat

    config, _, _ = init(tmp_path, "DE")
    cli("db", "upgrade", config=config)
    cli("enquiries", "verify", config=config)
    made = sorted(config.parent.glob("*.db*"))
    assert {p.name for p in made} >= {"records.db", "enquiries.db"}
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
