"""`ncb-connector db`: the databases' schema revisions, and upgrading them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from connector.cli.common import _settings, config_option, handles_errors
from connector.settings.config import Settings


def _databases(settings: Settings) -> list[tuple[Any, str, str]]:
    from connector.storage.migrations import Schema

    return [
        (Schema.RECORDS, "records", settings.records_url),
        (Schema.ENQUIRIES, "enquiry log", settings.enquiries_url),
    ]


@click.command("status")
@config_option
@handles_errors
def db_status(config_path: Path) -> None:
    """Each database's schema revision beside the one this version needs; exits 1 when one
    is not at it (a node would refuse to start)."""
    from connector.storage.migrations import migration_engine, status
    from connector.storage.urls import redacted

    settings = _settings(config_path)
    behind, current = False, True
    for schema, name, url in _databases(settings):
        engine = migration_engine(url)
        try:
            with engine.connect() as conn:
                found = status(schema, conn)
        finally:
            engine.dispose()
        state = (
            "up to date"
            if found.up_to_date
            else "new (created on first use)"
            if found.empty
            else "unknown revision: newer software?"
            if not found.known
            else "needs `ncb-connector db upgrade`"
        )
        behind = behind or not (found.up_to_date or found.empty)
        current = current and found.up_to_date
        click.echo(
            f"{name:12} {redacted(url)}\n{'':12} at {found.current or '-'}, "
            f"this version needs {found.head}: {state}"
        )
    if current:  # the records' search keys: only of a database that exists and is current
        from connector.records.store import RecordStore

        store = RecordStore.open(settings.records_url)
        try:
            for category in store.keys_outdated():
                behind = True
                click.echo(
                    f"{category.value}: search keys made by another version: run "
                    "`ncb-connector db upgrade` (or `records reindex`)"
                )
        finally:
            store.close()
    if behind:
        raise SystemExit(1)


@click.command("upgrade")
@config_option
@handles_errors
def db_upgrade(config_path: Path) -> None:
    """Bring both databases to the schema this version needs (stop the node first). A
    database made before schema versions is adopted when it has all the expected tables."""
    from connector.storage.migrations import migration_engine, upgrade_existing

    settings = _settings(config_path)
    for schema, name, url in _databases(settings):
        engine = migration_engine(url)
        try:
            with engine.begin() as conn:
                before, after = upgrade_existing(schema, conn)
        finally:
            engine.dispose()
        change = f"already at {after}" if before == after else f"{before or 'new'} → {after}"
        click.echo(f"{name}: {change}")
    _key_unkeyed_records(settings)


def _key_unkeyed_records(settings: Settings) -> None:
    """Records whose search keys another version made, or none, get them made now: an
    upgrade must not leave persons findable by reference only, or by the old keys."""
    from connector.records.store import RecordStore

    store = RecordStore.open(settings.records_url)
    try:
        for category in store.keys_outdated():
            n = store.rebuild_keys(category)
            click.echo(f"{category.value}: search keys made for {n} record(s)")
    finally:
        store.close()
