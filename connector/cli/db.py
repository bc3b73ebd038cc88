"""`ncb-connector db`: the databases' schema revisions, and upgrading them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from connector.cli.common import (
    _json,
    _settings,
    config_option,
    handles_errors,
    json_option,
    record_change,
)
from connector.trail.entry import Action

if TYPE_CHECKING:
    from connector.records.upkeep import KeysOutdated, SchemaState


@click.command("status")
@config_option
@json_option
@handles_errors
def db_status(config_path: Path, as_json: bool) -> None:
    """Each database's schema revision beside the one this version needs; exits 1 when one
    is not at it (a node would refuse to start)."""
    from connector.records.upkeep import KeysOutdated, database_status
    from connector.storage.urls import redacted

    behind = False
    found_json: list[dict[str, object]] = []
    for item in database_status(_settings(config_path)):
        behind = behind or item.behind
        if as_json:
            found_json.append(_status_json(item))
            continue
        if isinstance(item, KeysOutdated):
            click.echo(
                f"{item.category.value}: search keys made by another version: run "
                "`ncb-connector db upgrade` (or `records reindex`)"
            )
            continue
        found = item.found
        state = (
            "up to date"
            if found.up_to_date
            else "new (created on first use)"
            if found.empty
            else "unknown revision: newer software?"
            if not found.known
            else "needs `ncb-connector db upgrade`"
        )
        click.echo(
            f"{item.database.name:12} {redacted(item.database.url)}\n{'':12} at "
            f"{found.current or '-'}, this version needs {found.head}: {state}"
        )
    if as_json:
        _json({"ok": not behind, "databases": found_json})
    if behind:
        raise SystemExit(1)


def _status_json(item: SchemaState | KeysOutdated) -> dict[str, object]:
    from connector.records.upkeep import KeysOutdated
    from connector.storage.urls import redacted

    if isinstance(item, KeysOutdated):
        return {"keys_outdated": item.category.value}
    found = item.found
    return {
        "database": item.database.name,
        "url": redacted(item.database.url),
        "revision": found.current,
        "needs": found.head,
        "up_to_date": found.up_to_date,
        "new": found.empty,
        "known": found.known,
    }


@click.command("upgrade")
@config_option
@handles_errors
def db_upgrade(config_path: Path) -> None:
    """Bring both databases to the schema this version needs (stop the node first). A
    database made before schema versions is adopted when it has all the expected tables."""
    from connector.records.upkeep import Upgraded, upgrade_databases

    settings = _settings(config_path)
    changed: dict[str, str] = {}
    keys: dict[str, int] = {}
    try:
        for step in upgrade_databases(settings):
            if isinstance(step, Upgraded):
                before, after = step.before, step.after
                if before == after:
                    change = f"already at {after}"
                else:
                    change = changed[step.database.name] = f"{before or 'new'} → {after}"
                click.echo(f"{step.database.name}: {change}")
            else:
                keys[step.category.value] = step.records
                click.echo(f"{step.category.value}: search keys made for {step.records} record(s)")
    finally:
        # What was done is recorded even when a later step failed: it took effect.
        if changed or keys:
            record_change(
                settings,
                Action.DATABASES_UPGRADED,
                settings.node,
                **changed,
                **({"search_keys": keys} if keys else {}),
            )
