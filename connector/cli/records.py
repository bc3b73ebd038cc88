"""`ncb-connector records`: importing, showing, removing, reindexing, syncing national records."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import click

from connector.cli.common import (
    _HELD,
    _fail,
    _json,
    _settings,
    config_option,
    err,
    handles_errors,
    json_option,
    out,
    record_change,
)
from connector.records.importer import Format
from connector.records.kinds.documents import DocumentStatus
from connector.records.kinds.registry import KINDS
from connector.records.kinds.vehicles import VehicleStatus
from connector.records.store import RecordStore
from connector.settings.config import load_settings
from connector.trail.entry import Action
from connector.vocabulary import Category

if TYPE_CHECKING:
    from connector.sources.sync import SyncReport

# FtM entities carry no status: the one given is that of a travel document or a vehicle.
_FTM_STATUSES = list(dict.fromkeys((*get_args(DocumentStatus), *get_args(VehicleStatus))))


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--category", required=True, type=click.Choice(_HELD))
@click.option("--format", "fmt", type=click.Choice(get_args(Format)))
@click.option(
    "--status",
    type=click.Choice(_FTM_STATUSES),
    help="FtM only: the status of every imported travel document or vehicle "
    "(FtM has none; default stolen).",
)
@click.option(
    "--warrant-country",
    metavar="CC",
    help="FtM only, wanted_persons: the country that issued the warrants "
    "(default: this node's country).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Make the category equal to the file: records absent from it are removed "
    "(only when no line was rejected, and at most half the category unless "
    "--yes).",
)
@click.option("--yes", is_flag=True, help="With --replace: allow removing more than half.")
@config_option
@json_option
@handles_errors
def records_import(
    file: Path,
    category: str,
    fmt: Format | None,
    status: str | None,
    warrant_country: str | None,
    replace: bool,
    yes: bool,
    config_path: Path,
    as_json: bool,
) -> None:
    """Upsert records from NDJSON, CSV or FollowTheMoney entities; bad lines are reported,
    good lines imported."""
    from connector.records.importfile import import_file

    settings = _settings(config_path)
    started = time.perf_counter()
    with _progress(file) as advance:
        report = import_file(
            settings,
            None if str(file) == "-" else file,
            category=Category(category),
            fmt=fmt,
            status=status,
            warrant_country=warrant_country,
            replace=replace,
            allow_large_removal=yes,
            progress=advance,
        )
    elapsed = time.perf_counter() - started
    if report.inserted or report.updated or report.removed:
        record_change(
            settings,
            Action.RECORDS_IMPORTED,
            category,
            file=str(file) if str(file) == "-" else str(file.resolve()),
            inserted=report.inserted,
            updated=report.updated,
            removed=report.removed,
            rejected=report.rejected,
            replace=replace,
        )
    if as_json:
        _json(
            {
                "file": str(file),
                "inserted": report.inserted,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "removed": report.removed,
                "rejected": report.rejected,
                "rejected_lines": [{"line": r.line, "reason": r.reason} for r in report.errors],
                "replace_skipped": report.replace_skipped,
                "seconds": round(elapsed, 3),
            }
        )
        if report.rejected:
            raise SystemExit(1)
        return
    for r in report.errors:
        err.print(f"{file}:{r.line}: {r.reason}", soft_wrap=True, markup=False)
    if report.rejected > len(report.errors):
        err.print(f"… and {report.rejected - len(report.errors)} more rejected lines")
    out.print(
        f"{report.inserted} inserted, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.removed} removed, {report.rejected} rejected ({elapsed:.1f} s)"
    )
    if report.replace_skipped:
        err.print(f"--replace: nothing was removed, because {report.replace_skipped}")
    if report.rejected:
        raise SystemExit(1)


class _progress:
    """A progress bar over bytes read, on a terminal only."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._progress: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not err.is_terminal:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        total = None
        if str(self.file) != "-":
            try:
                total = self.file.stat().st_size
            except OSError:
                total = None
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self._progress.start()
        task = self._progress.add_task("importing", total=total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _parse_ref(ref: str, node: str) -> tuple[Category, str]:
    parts = ref.split(":", 2)
    if len(parts) == 3 and parts[0] != node:
        _fail(f"{ref} is a record of {parts[0]}, not of this node ({node})")
    category, _, record_id = (parts[1], "", parts[2]) if len(parts) == 3 else ref.partition("/")
    if category not in _HELD or not record_id:
        _fail(f"{ref!r}: give NODE:category:id (as in an answer) or category/id")
    return Category(category), record_id


@click.command("show")
@click.argument("ref")
@config_option
@handles_errors
def records_show(ref: str, config_path: Path) -> None:
    """One record in full, by its ref (FR:travel_documents:ID) or category/ID."""
    settings = load_settings(config_path)
    category, record_id = _parse_ref(ref, settings.node)
    with closing(RecordStore.open(settings.records_url)) as store:
        record = store.get(category, record_id)
    if record is None:
        _fail(f"no record {category.value}/{record_id}", 1)
        return
    _json({"ref": f"{settings.node}:{category.value}:{record.id}", "fields": record.fields})


@click.command("remove")
@click.argument("ref")
@config_option
@handles_errors
def records_remove(ref: str, config_path: Path) -> None:
    """Remove one record (e.g. a vehicle that was found); it is no longer a hit."""
    settings = load_settings(config_path)
    category, record_id = _parse_ref(ref, settings.node)
    with closing(RecordStore.open(settings.records_url)) as store:
        removed = store.remove(category, record_id)
    if not removed:
        _fail(f"no record {category.value}/{record_id}", 1)
    record_change(settings, Action.RECORD_REMOVED, f"{category.value}/{record_id}")
    out.print(f"removed {category.value}/{record_id}")


@click.command("stats")
@config_option
@json_option
@handles_errors
def records_stats(config_path: Path, as_json: bool) -> None:
    """Records held per category."""
    settings = load_settings(config_path)
    with closing(RecordStore.open(settings.records_url)) as store:
        counts = {category.value: store.count(category) for category in Category}
    if as_json:
        _json({"categories": counts})
        return
    for category, count in counts.items():
        out.print(f"{category:<20} {count:>10}")


@click.command("reindex")
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=click.Choice([c.value for c, kind in KINDS.items() if kind.keyed]),
    help="Only this category (repeatable); default: every category with keys.",
)
@config_option
@handles_errors
def records_reindex(categories: tuple[str, ...], config_path: Path) -> None:
    """Make every record's search keys anew from its fields (after an upgrade that changed
    name matching). The records themselves are not touched."""
    from connector.records.upkeep import reindex

    settings = _settings(config_path)
    made: dict[str, int] = {}
    try:
        for done in reindex(settings, [Category(c) for c in categories]):
            made[done.category.value] = done.records
            click.echo(
                f"{done.category.value}: search keys made for {done.records} record(s) "
                f"({done.seconds:.1f} s)"
            )
    finally:
        # The categories done are recorded even when a later one failed: they took effect.
        if made:
            record_change(settings, Action.RECORDS_REINDEXED, ",".join(made), records=made)


@click.command("sync")
@click.option("--source", "names", multiple=True, help="Only this source (repeatable).")
@click.option(
    "--allow-removal",
    is_flag=True,
    help="Apply removals even when more than the source's max_removal_share of "
    "its records would go.",
)
@config_option
@handles_errors
def records_sync(names: tuple[str, ...], allow_removal: bool, config_path: Path) -> None:
    """Pull what changed in the national databases of sources.yaml (read only); exits 1
    when a row was rejected or removals were refused."""
    from connector.sources.syncing import sync_sources

    settings = _settings(config_path)
    failed = False
    changed: dict[str, dict[str, int]] = {}
    try:
        for source, report in sync_sources(
            settings, names, allow_removal=allow_removal, clock=time.time
        ):
            if report.inserted or report.updated or report.removed:
                changed[source.name] = {
                    "inserted": report.inserted,
                    "updated": report.updated,
                    "removed": report.removed,
                    "rejected": report.rejected,
                }
            failed = _print_sync(source.name, report) or failed
    finally:
        # The sources synced are recorded even when a later one failed: they took effect.
        if changed:
            record_change(settings, Action.RECORDS_SYNCED, ",".join(changed), sources=changed)
    if failed:
        raise SystemExit(1)


def _print_sync(name: str, report: SyncReport) -> bool:
    """One source's outcome; True when a row was rejected or removals were refused."""
    click.echo(
        f"{name} → {report.category}: read {report.read}, "
        f"inserted {report.inserted}, updated {report.updated}, "
        f"unchanged {report.unchanged}, removed {report.removed}, "
        f"rejected {report.rejected}"
    )
    for key, reason in report.errors[:20]:
        click.echo(f"  rejected {key.replace(chr(31), '/')}: {reason}", err=True)
    if report.rejected > 20:
        click.echo(f"  … and {report.rejected - 20} more", err=True)
    if report.refused:
        click.echo(f"  {report.refused}", err=True)
    return bool(report.rejected or report.refused)
